//! The HTTP surface, declared once: every route with its method, its path and the scope a token
//! needs for it, written together where the route is added. The server's router is built from
//! these declarations, one sub-router per scope behind its own authentication layer, and so is
//! the list of routes that docs/openapi.json and docs/api.md are checked against. A route cannot
//! get a scope by the shape of its path.

use std::sync::Arc;

use anchorwatch_analyzer::sql::QueryError;
use anchorwatch_collector::ApiError;
use axum::Router;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, delete, get, post};

use crate::auth::{self, Auth, Scope};

/// One route: `method path`, and the scope a token needs (`None`: anyone, also with tokens
/// configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path as axum matches it, with `{model}`-style parameters.
    pub path: &'static str,
    /// The scope it needs; `None` for the public routes (probes, metrics, sign-in).
    pub scope: Option<Scope>,
}

/// Routes under construction, with handlers on the state `S` (each component has its own),
/// grouped by the scope they need.
pub struct Api<S = ()> {
    by_scope: Vec<(Option<Scope>, Router<S>)>,
    routes: Vec<Route>,
}

impl<S: Clone + Send + Sync + 'static> Default for Api<S> {
    fn default() -> Self {
        Api { by_scope: Vec::new(), routes: Vec::new() }
    }
}

impl<S: Clone + Send + Sync + 'static> Api<S> {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `GET path`, needing `scope`.
    pub fn get<H: Handler<T, S>, T: 'static>(self, scope: Option<Scope>, path: &'static str, handler: H) -> Self {
        self.add(Route { method: "GET", path, scope }, get(handler))
    }

    /// `POST path`, needing `scope`.
    pub fn post<H: Handler<T, S>, T: 'static>(self, scope: Option<Scope>, path: &'static str, handler: H) -> Self {
        self.add(Route { method: "POST", path, scope }, post(handler))
    }

    /// `DELETE path`, needing `scope`.
    pub fn delete<H: Handler<T, S>, T: 'static>(self, scope: Option<Scope>, path: &'static str, handler: H) -> Self {
        self.add(Route { method: "DELETE", path, scope }, delete(handler))
    }

    fn add(mut self, route: Route, handler: MethodRouter<S>) -> Self {
        self.routes.push(route);
        match self.by_scope.iter_mut().find(|(scope, _)| *scope == route.scope) {
            Some((_, router)) => *router = std::mem::take(router).route(route.path, handler),
            None => self.by_scope.push((route.scope, Router::new().route(route.path, handler))),
        }
        self
    }

    /// The handlers given their state; the routes stay as declared.
    pub fn with_state<S2: Clone + Send + Sync + 'static>(self, state: S) -> Api<S2> {
        let by_scope = self.by_scope.into_iter().map(|(scope, router)| (scope, router.with_state(state.clone())));
        Api { by_scope: by_scope.collect(), routes: self.routes }
    }

    /// These routes and `other`'s.
    pub fn merge(mut self, other: Api<S>) -> Self {
        for (scope, router) in other.by_scope {
            match self.by_scope.iter_mut().find(|(s, _)| *s == scope) {
                Some((_, mine)) => *mine = std::mem::take(mine).merge(router),
                None => self.by_scope.push((scope, router)),
            }
        }
        self.routes.extend(other.routes);
        self
    }

    /// Every route declared so far, in declaration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

impl Api {
    /// The router: each scope's routes behind [`auth::require`] for that scope; public routes as
    /// they are. A path no route matches reaches the caller's fallback without authentication.
    pub fn into_router(self, auth: &Arc<Auth>) -> Router {
        self.by_scope.into_iter().fold(Router::new(), |app, (scope, router)| {
            let router = match scope {
                None => router,
                Some(scope) => {
                    router.route_layer(axum::middleware::from_fn_with_state((auth.clone(), scope), auth::require))
                }
            };
            app.merge(router)
        })
    }
}

/// The HTTP form of a query failure.
pub fn query_error(e: QueryError) -> ApiError {
    let message = e.to_string();
    match e {
        QueryError::Invalid(_) => ApiError::bad_request("invalid_query", message),
        QueryError::ReadOnly(_) => ApiError::new(StatusCode::FORBIDDEN, "read_only", message),
        QueryError::ResourcesExhausted(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "query_too_large", message)
        }
        QueryError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "query_timeout", message),
        QueryError::Execution(_) => ApiError::internal(&message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ok() -> &'static str {
        "ok"
    }

    #[test]
    fn routes_keep_their_scope_through_state_and_merge() {
        let read = Api::<Arc<u8>>::new().get(Some(Scope::Read), "/v1/silences", ok).with_state::<()>(Arc::new(1));
        let admin = Api::<()>::new().post(Some(Scope::Admin), "/v1/silences", ok).get(None, "/healthz", ok);
        let api = read.merge(admin);
        assert_eq!(
            api.routes(),
            [
                Route { method: "GET", path: "/v1/silences", scope: Some(Scope::Read) },
                Route { method: "POST", path: "/v1/silences", scope: Some(Scope::Admin) },
                Route { method: "GET", path: "/healthz", scope: None },
            ]
        );
        assert_eq!(api.by_scope.len(), 3, "one router per scope");
    }
}

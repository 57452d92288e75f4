//! The subcommands of the `anchorwatch` binary that are not a component of their own, one file
//! each (`report`, `proxy` and `demo` are their modules' `run`). `main.rs` parses the command
//! line and calls them. The top layer: a command may use any module, and no module uses a
//! command.

pub mod check_config;
pub mod compact;
pub mod models;
pub mod query;
pub mod retrain;
pub mod serve;

//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! Lookup order: `ORT_DYLIB_PATH`, the project's `.venv` (the pinned `onnxruntime` wheel), the
//! system. The file is checked before it is loaded: loading a missing library can hang.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

/// The `onnxruntime` wheel pinned in `tests/requirements.txt`, named in install hints.
pub const WHEEL: &str = "onnxruntime==1.32.0";

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The process's ONNX Runtime environment, loading the library on first use. The error says
/// where it looked and how to install it.
pub fn environment() -> Result<&'static Environment, String> {
    ENVIRONMENT.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Environment, String> {
    let path = find_library()?;
    let builder = ort::init_from(&path)
        .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}; {}", path.display(), install_hint()))?;
    let env = builder
        .with_name("anchorwatch")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime (loaded from {}): {e}", path.display()))?;
    tracing::info!(library = %path.display(), "loaded ONNX Runtime");
    Ok(env)
}

fn install_hint() -> String {
    format!(
        "install it with `make setup-onnxruntime` (the `{WHEEL}` wheel, into the project's .venv), or `pip install {WHEEL}` and set ORT_DYLIB_PATH to its onnxruntime/capi/libonnxruntime.so.<version>"
    )
}

/// The library file to load: the first that exists of `ORT_DYLIB_PATH`, the project's `.venv`
/// (searched upwards from the current folder, then from the binary's folder), the system folders.
pub fn find_library() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("ORT_DYLIB_PATH is {}, which is not a file; {}", path.display(), install_hint()))
        };
    }
    let mut looked = Vec::new();
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        starts.push(dir);
    }
    for start in &starts {
        for dir in start.ancestors() {
            let venv = dir.join(".venv");
            if let Some(found) = in_venv(&venv) {
                return Ok(found);
            }
            if venv.is_dir() {
                looked.push(venv.display().to_string());
            }
        }
    }
    for dir in ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"] {
        if let Some(found) = newest_versioned(Path::new(dir)) {
            return Ok(found);
        }
    }
    looked.push("ORT_DYLIB_PATH (unset)".into());
    looked.push("/usr/local/lib, /usr/lib, /usr/lib/<arch>".into());
    Err(format!("the ONNX Runtime library was not found (looked in: {}); {}", looked.join(", "), install_hint()))
}

/// `libonnxruntime.so.<version>` in a virtualenv's `lib/python3*/site-packages/onnxruntime/capi`.
fn in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut pythons: Vec<PathBuf> =
        lib.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("python3")).map(|e| e.path()).collect();
    pythons.sort();
    pythons.iter().rev().find_map(|p| newest_versioned(&p.join("site-packages/onnxruntime/capi")))
}

/// The `libonnxruntime.so*` file in `dir` with the highest version (the wheel ships only the
/// versioned name).
fn newest_versioned(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix("libonnxruntime.so")?;
            let version: Vec<u32> = rest.trim_start_matches('.').split('.').filter_map(|v| v.parse().ok()).collect();
            (rest.is_empty() || !version.is_empty()).then(|| (version, e.path()))
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_versioned_file() {
        let dir = tempfile::tempdir().unwrap();
        let capi = dir.path().join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        assert_eq!(in_venv(dir.path()), None);
        for name in ["libonnxruntime.so.1.9.0", "libonnxruntime.so.1.32.0", "libonnxruntime_providers_shared.so"] {
            std::fs::write(capi.join(name), b"").unwrap();
        }
        assert_eq!(in_venv(dir.path()), Some(capi.join("libonnxruntime.so.1.32.0")));
    }
}

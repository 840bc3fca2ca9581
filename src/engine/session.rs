//! ONNX Runtime for every model: the library, loaded once per process from the model
//! directory, and the one way a session is set up (threads, spinning), so that the text
//! models (recognizer.rs) and the detector (detect/) run alike.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;
use ort::session::builder::SessionBuilder;
use ort::session::Session;

use super::model::{ModelError, ModelSpec, RUNTIME_LIBRARY, SETUP_HINT};

/// A text model's session, ready to run: its description, the session, its input's name.
pub struct LoadedModel {
    pub spec: Arc<ModelSpec>,
    pub session: Session,
    pub input_name: String,
}

static RUNTIME: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from the model directory, once per process (every model shares it).
pub fn runtime(model_dir: &Path) -> Result<Environment, ModelError> {
    let result = RUNTIME.get_or_init(|| {
        let library = model_dir.join(RUNTIME_LIBRARY);
        if !library.exists() {
            return Err(format!("{}: missing ({SETUP_HINT})", library.display()));
        }
        let builder =
            ort::init_from(&library).map_err(|e| format!("{}: {e}", library.display()))?;
        builder
            .with_name("aiocr")
            .build()
            .map_err(|e| e.to_string())
    });
    result.clone().map_err(ModelError::Runtime)
}

/// A session builder for the model at `model_path` (named in errors) with `intra_threads`
/// threads inside each run; the caller commits it from the file or from memory.
pub fn builder(
    environment: &Environment,
    model_path: &Path,
    intra_threads: usize,
) -> Result<SessionBuilder, ModelError> {
    assert!(intra_threads >= 1, "at least the calling thread");
    let runtime_error = |e: ort::Error| runtime_error(model_path, e);
    Session::builder(environment)
        .map_err(runtime_error)?
        .with_intra_threads(intra_threads)
        .map_err(|e| runtime_error(e.into()))?
        // Pool threads spin while a run hands them one operator after another (a sleeping
        // pool thread costs a wake-up per operator), and stop spinning when the run ends:
        // ONNX Runtime's default spins on for tens of milliseconds after each run, taking the
        // cores from the other recognition threads and the reactors.
        .with_intra_op_spinning(intra_threads > 1)
        .map_err(|e| runtime_error(e.into()))?
        .with_config_entry("session.force_spinning_stop", "1")
        .map_err(|e| runtime_error(e.into()))
}

/// An error of ONNX Runtime about the model at `model_path`.
pub fn runtime_error(model_path: &Path, error: ort::Error) -> ModelError {
    ModelError::Runtime(format!("{}: {error}", model_path.display()))
}

/// The name of the session's first input (every model here has one).
pub fn input_name(session: &Session) -> String {
    session
        .inputs()
        .first()
        .map(|input| input.name().to_string())
        .unwrap_or_default()
}

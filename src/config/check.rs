//! A section's bounds are a list of (holds, what must hold); the first that fails is the
//! error the configuration is refused with.

/// `Err("config: <message>")` of the first check that does not hold.
pub fn first_failed(checks: &[(bool, &str)]) -> Result<(), String> {
    match checks.iter().find(|(holds, _)| !holds) {
        Some((_, message)) => Err(format!("config: {message}")),
        None => Ok(()),
    }
}

//! Parsing of untrusted request parts, as pure functions (the API calls them; the fuzz
//! targets in `fuzz/` drive them with arbitrary bytes): HTTP Basic credentials, invocation
//! parameters, the body of an action PUT.

use crate::model::ActionPut;
use base64::Engine as _;
use serde_json::{Map, Value};

/// Largest invocation parameters, bytes (OpenWhisk: 1 MB).
pub const MAX_PARAMS_BYTES: usize = 1_000_000;

/// `uuid` and `key` from an `Authorization: Basic base64(uuid:key)` value.
pub fn basic_auth(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (uuid, key) = text.split_once(':')?;
    Some((uuid.to_string(), key.to_string()))
}

/// Why a body was refused: too large (413) or malformed (400).
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit (413).
    TooLarge(String),
    /// Not what was expected (400).
    Malformed(String),
}

/// Invocation parameters: empty (or whitespace) means `{}`; else a JSON object of at most
/// [`MAX_PARAMS_BYTES`].
pub fn invoke_params(body: &[u8]) -> Result<Map<String, Value>, BodyError> {
    if body.len() > MAX_PARAMS_BYTES {
        return Err(BodyError::TooLarge(format!(
            "The request content was malformed: the parameters are {} bytes, more than the limit of {MAX_PARAMS_BYTES}.",
            body.len()
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(BodyError::Malformed(
            "The request content was malformed: parameters must be a JSON object.".into(),
        )),
        Err(e) => Err(BodyError::Malformed(format!(
            "The request content was malformed: {e}"
        ))),
    }
}

/// The body of an action PUT.
pub fn action_put(body: &[u8]) -> Result<ActionPut, BodyError> {
    serde_json::from_slice(body)
        .map_err(|e| BodyError::Malformed(format!("The request content was malformed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_should_and_refuses_the_rest() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:k:x")
        );
        assert_eq!(basic_auth(&v), Some(("u".into(), "k:x".into())));
        assert_eq!(basic_auth("Bearer x"), None);
        assert_eq!(basic_auth("Basic !!!"), None);
        assert_eq!(invoke_params(b"  ").expect("empty").len(), 0);
        assert!(matches!(
            invoke_params(b"[1]"),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            invoke_params(&vec![b' '; MAX_PARAMS_BYTES + 1]),
            Err(BodyError::TooLarge(_))
        ));
        assert!(action_put(br#"{"exec":{"kind":"wasm","code":"AGFzbQ=="}}"#).is_ok());
        assert!(action_put(b"{").is_err());
    }
}

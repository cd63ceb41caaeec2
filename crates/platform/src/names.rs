//! Entity names and paths, validated in one place: a simple name (`echo`), a name in a
//! package (`pkg/echo`), and fully qualified paths (`/ns/echo`, `/ns/pkg/echo`, and the
//! client's `ns/pkg/echo`). `_` stands for the caller's own namespace.

use std::fmt;

/// The built-in namespace every key may read (catalog packages `utils`, `alarms`).
pub const SYSTEM_NAMESPACE: &str = "whisk.system";

/// Longest entity name, characters (OpenWhisk: 256).
pub const MAX_NAME: usize = 256;

/// Whether `name` is a valid simple entity name (OpenWhisk's rule: letters, digits, `_`,
/// `-`, `.`, `@`, space; not starting with a space or a dot; at most 256 characters).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.@ ".contains(c))
        && !name.starts_with([' ', '.'])
}

/// Check a simple name, with OpenWhisk's error text.
pub fn check_name(name: &str) -> Result<(), String> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(format!("The name '{name}' is not a valid entity name."))
    }
}

/// A fully resolved entity path: namespace, optional package, name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntityPath {
    /// Namespace (never `_`).
    pub namespace: String,
    /// Package, if the entity lives in one.
    pub package: Option<String>,
    /// Simple name.
    pub name: String,
}

impl EntityPath {
    /// An entity directly in a namespace.
    pub fn new(namespace: &str, package: Option<&str>, name: &str) -> EntityPath {
        EntityPath {
            namespace: namespace.to_string(),
            package: package.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// Parse a reference as the client writes it: `name`, `pkg/name`, `/ns/name`,
    /// `/ns/pkg/name` or `ns/pkg/name`; `_` (or no namespace) is `caller`. Every segment is
    /// validated.
    pub fn parse(reference: &str, caller: &str) -> Result<EntityPath, String> {
        let bad = || format!("The name '{reference}' is not a valid entity path.");
        let absolute = reference.starts_with('/');
        let parts: Vec<&str> = reference.trim_start_matches('/').split('/').collect();
        let (ns, pkg, name) = match (absolute, parts.as_slice()) {
            (false, [n]) => (None, None, *n),
            (false, [p, n]) => (None, Some(*p), *n),
            (true, [ns, n]) => (Some(*ns), None, *n),
            (_, [ns, p, n]) => (Some(*ns), Some(*p), *n),
            _ => return Err(bad()),
        };
        let ns = match ns {
            None | Some("_") => caller,
            Some(ns) => ns,
        };
        if !valid_name(ns) || !valid_name(name) || pkg.is_some_and(|p| !valid_name(p)) {
            return Err(bad());
        }
        Ok(EntityPath::new(ns, pkg, name))
    }

    /// The name within its namespace as the store keeps it: `name` or `pkg/name`.
    pub fn store_name(&self) -> String {
        match &self.package {
            Some(p) => format!("{p}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// From a namespace and a store name (`name` or `pkg/name`).
    pub fn from_store(namespace: &str, store_name: &str) -> EntityPath {
        match store_name.split_once('/') {
            Some((p, n)) => EntityPath::new(namespace, Some(p), n),
            None => EntityPath::new(namespace, None, store_name),
        }
    }

    /// The namespace part of OpenWhisk's JSON: `ns` or `ns/pkg`.
    pub fn json_namespace(&self) -> String {
        match &self.package {
            Some(p) => format!("{}/{p}", self.namespace),
            None => self.namespace.clone(),
        }
    }

    /// `ns/pkg/name` (no leading slash; the `path` annotation's form).
    pub fn path(&self) -> String {
        format!("{}/{}", self.namespace, self.store_name())
    }
}

impl fmt::Display for EntityPath {
    /// `/ns/pkg/name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reference_form() {
        let p = |s| EntityPath::parse(s, "guest");
        assert_eq!(p("a").unwrap().to_string(), "/guest/a");
        assert_eq!(p("pkg/a").unwrap().to_string(), "/guest/pkg/a");
        assert_eq!(p("/_/a").unwrap().to_string(), "/guest/a");
        assert_eq!(p("/other/a").unwrap().to_string(), "/other/a");
        assert_eq!(
            p("/whisk.system/utils/echo").unwrap().to_string(),
            "/whisk.system/utils/echo"
        );
        assert_eq!(p("ns/pkg/a").unwrap().to_string(), "/ns/pkg/a");
        assert_eq!(p("pkg/a").unwrap().store_name(), "pkg/a");
        assert_eq!(p("pkg/a").unwrap().json_namespace(), "guest/pkg");
        for bad in [
            "",
            "/",
            "a/b/c/d",
            "/a",
            "a//b",
            ".x",
            "a/b c!",
            "/ns/p/q/r",
        ] {
            assert!(p(bad).is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn names() {
        assert!(valid_name("my-action_1.0@x"));
        assert!(!valid_name(" lead"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(257)));
    }
}

//! `VAR_FILE`: a setting read from a file, the way Docker and Kubernetes
//! deliver secrets (`/run/secrets/NAME`), so that a URL with a password
//! never sits in a container's environment (which `docker inspect` shows).
//!
//! For a variable `DATABASE_URL`, `DATABASE_URL_FILE=/run/secrets/database_url`
//! names a file holding the value; one trailing newline (and surrounding
//! whitespace) is dropped. Setting both is an error: which one wins would be
//! a guess. An unreadable file is an error naming the `_FILE` variable and
//! the path (never the contents).

use crate::SettingsError;

/// The suffix of the variable that names a file holding the value.
pub const FILE_SUFFIX: &str = "_FILE";

/// The value of `var`: the variable itself, else the contents of the file
/// named by `{var}_FILE`, else `None`. `get` reads one variable (the process
/// environment in the binaries).
pub fn lookup(
    var: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, SettingsError> {
    let file_var = format!("{var}{FILE_SUFFIX}");
    match (get(var), get(&file_var)) {
        (Some(_), Some(path)) => Err(SettingsError::Invalid {
            variable: file_var,
            value: path,
            expected: format!("either {var} or {var}{FILE_SUFFIX}, not both"),
        }),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(e) => Err(SettingsError::Invalid {
                variable: file_var,
                value: path,
                expected: format!("a readable file ({e})"),
            }),
        },
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_variable_or_the_file_it_names() {
        assert_eq!(lookup("U", vars(&[])).unwrap(), None);
        assert_eq!(
            lookup("U", vars(&[("U", "x")])).unwrap().as_deref(),
            Some("x")
        );

        let dir =
            std::env::temp_dir().join(format!("pool-core-secret-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("url");
        std::fs::write(&path, "postgres://u:Sekrit-7@db/app\n").unwrap();
        let p = path.to_str().unwrap();
        assert_eq!(
            lookup("U", vars(&[("U_FILE", p)])).unwrap().as_deref(),
            Some("postgres://u:Sekrit-7@db/app")
        );
        let both = lookup("U", vars(&[("U", "x"), ("U_FILE", p)]))
            .unwrap_err()
            .to_string();
        assert!(
            both.contains("U_FILE") && both.contains("not both"),
            "{both}"
        );
        assert!(!both.contains("Sekrit"), "{both}");

        let missing = dir.join("nope");
        let err = lookup("U", vars(&[("U_FILE", missing.to_str().unwrap())]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("U_FILE") && err.contains("nope"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

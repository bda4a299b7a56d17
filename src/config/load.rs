//! Layering of the settings sources and `*_file` indirection.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde_json::{Map, Value};

use super::validate::SettingsError;
use super::Settings;

/// Where settings were read from, for the start-up log line.
#[derive(Debug, Clone)]
pub struct SettingsSource {
    pub file: Option<PathBuf>,
}

/// Environment variables under `TANDEM_` that are not settings keys: the settings
/// file, the log filter, and the server URL the command line talks to.
const NOT_SETTINGS: &[&str] = &["config", "log", "url"];

/// Loads settings from the process environment: the file named by `TANDEM_CONFIG` (or
/// `tandem.toml` in the working directory when it exists), then `TANDEM_*` variables.
pub fn load() -> Result<(Settings, SettingsSource), SettingsError> {
    let file = match std::env::var_os("TANDEM_CONFIG") {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(SettingsError::new(
                    "TANDEM_CONFIG",
                    format!("no settings file at `{}`", path.display()),
                ));
            }
            Some(path)
        }
        None => Some(PathBuf::from("tandem.toml")).filter(|p| p.is_file()),
    };
    let env = Env::prefixed("TANDEM_").split("__").filter(|key| {
        let key = key.as_str().to_ascii_lowercase();
        !NOT_SETTINGS.contains(&key.as_str()) && !key.starts_with("test_")
    });
    let settings = load_from(file.as_deref(), Figment::new().merge(env))?;
    Ok((settings, SettingsSource { file }))
}

/// Loads settings from an optional TOML file with `overrides` on top, then resolves
/// `*_file` keys and validates the whole.
pub fn load_from(file: Option<&Path>, overrides: Figment) -> Result<Settings, SettingsError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        figment = figment.merge(Toml::file_exact(path));
    }
    let raw: Value = figment
        .merge(overrides)
        .extract()
        .map_err(SettingsError::from_figment)?;
    let raw = resolve_files(raw, "")?;
    let settings: Settings = Figment::from(Serialized::defaults(raw))
        .extract()
        .map_err(SettingsError::from_figment)?;
    settings.validate()?;
    Ok(settings)
}

/// Replaces every `key_file = "path"` with `key = <contents of path>` (trailing newline
/// trimmed), so secrets can come from mounted files instead of the environment.
fn resolve_files(value: Value, path: &str) -> Result<Value, SettingsError> {
    let Value::Object(map) = value else {
        return Ok(value);
    };
    let mut resolved = Map::new();
    for (key, value) in map {
        let key_path = join(path, &key);
        match key.strip_suffix("_file") {
            Some(target) if value.is_string() => {
                let file = value.as_str().unwrap_or_default();
                let contents = std::fs::read_to_string(file).map_err(|err| {
                    SettingsError::new(&key_path, format!("cannot read `{file}`: {err}"))
                })?;
                let target_path = join(path, target);
                if resolved.contains_key(target) {
                    return Err(SettingsError::new(
                        &target_path,
                        format!("set both directly and through `{key_path}`; keep one"),
                    ));
                }
                resolved.insert(
                    target.to_string(),
                    Value::String(contents.trim_end_matches(['\n', '\r']).to_string()),
                );
            }
            _ => {
                let value = resolve_files(value, &key_path)?;
                if resolved.contains_key(&key) {
                    return Err(SettingsError::new(
                        &key_path,
                        format!("set both directly and through `{key_path}_file`; keep one"),
                    ));
                }
                resolved.insert(key, value);
            }
        }
    }
    Ok(Value::Object(resolved))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

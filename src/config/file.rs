//! Settings from a TOML file (`--config FILE` / `LATCHKEY_CONFIG`) and secrets from files
//! (`LATCHKEY_X_FILE`). Both become the defaults of the arguments they name, so the order of
//! precedence is clap's own: a flag, then the variable, then the file, then the built-in default.

use clap::{Arg, Command};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

/// The variable that names the file, and the flag that does the same.
const CONFIG_VARIABLE: &str = "LATCHKEY_CONFIG";
const CONFIG_FLAG: &str = "--config";

/// `command` with the settings of the config file (named by `args` or the environment) and of
/// every `LATCHKEY_X_FILE` secret as defaults; the error is one line naming the file or key.
pub fn apply(command: Command, args: &[OsString]) -> Result<Command, String> {
    let file = match config_path(args) {
        Some(path) => read(&path)?,
        None => BTreeMap::new(),
    };
    if file.contains_key(CONFIG_VARIABLE) {
        return Err(format!(
            "the config file sets {CONFIG_VARIABLE}: a config file cannot name another"
        ));
    }
    let mut unknown: Vec<&String> = file.keys().collect();
    let command = with_defaults(command, &file, args, &mut unknown)?;
    if let Some(key) = unknown.first() {
        return Err(format!(
            "the config file sets {key}, which is not a setting (keys are named like the LATCHKEY_* variables)"
        ));
    }
    Ok(command)
}

/// `--config FILE`, `--config=FILE`, or `LATCHKEY_CONFIG`.
fn config_path(args: &[OsString]) -> Option<OsString> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == CONFIG_FLAG {
            return args.next().cloned();
        }
        if let Some(path) = arg.to_str().and_then(|arg| arg.strip_prefix("--config=")) {
            return Some(path.into());
        }
    }
    std::env::var_os(CONFIG_VARIABLE)
}

/// The file's settings as text, by variable name.
fn read(path: &OsString) -> Result<BTreeMap<String, String>, String> {
    let shown = Path::new(path).display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {shown}: {e}"))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("the config file {shown} is not TOML: {}", e.message()))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                // Lists are what a comma-separated variable holds.
                toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>().map(|items| items.join(",")),
                other => scalar(&other),
            };
            let text = text.ok_or_else(|| {
                format!("the config file {shown} sets {key} to a table; give a value or a list of values")
            })?;
            Ok((key.to_ascii_uppercase(), text))
        })
        .collect()
}

/// A string, number or boolean as the text its variable would hold.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(n) => Some(n.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn with_defaults<'a>(
    command: Command,
    file: &'a BTreeMap<String, String>,
    args: &[OsString],
    unknown: &mut Vec<&'a String>,
) -> Result<Command, String> {
    let variables: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env().and_then(|e| e.to_str()).map(str::to_owned))
        .collect();
    let mut defaults = Vec::new();
    for arg in command.get_arguments() {
        let Some(variable) = arg.get_env().and_then(|e| e.to_str()) else {
            continue;
        };
        unknown.retain(|key| key.as_str() != variable);
        let secret_file = format!("{variable}_FILE");
        // A secret read from a file; a setting that is itself a file (the key file) is not.
        let from_file = if arg.is_hide_env_values_set() && !variables.contains(&secret_file) {
            match std::env::var_os(&secret_file) {
                Some(_) if std::env::var_os(variable).is_some() => {
                    return Err(format!("give {variable} or {secret_file}, not both"));
                }
                Some(path) => Some(secret(&secret_file, &path)?),
                None => None,
            }
        } else {
            None
        };
        // A secret whose other half is its own setting (`LATCHKEY_SECRET_KEY` and the key file
        // `LATCHKEY_SECRET_KEY_FILE`): when a flag or variable gives that half, the file's
        // secret gives way, as every file setting does to flags and variables.
        let rival_given = arg.is_hide_env_values_set()
            && command.get_arguments().any(|other| {
                other.get_env().and_then(|e| e.to_str()) == Some(secret_file.as_str())
                    && (std::env::var_os(&secret_file).is_some() || flag_given(other, args))
            });
        let from_config = file.get(variable).cloned().filter(|_| !rival_given);
        if let Some(value) = from_file.or(from_config) {
            defaults.push((arg.get_id().clone(), value, arg.is_hide_env_values_set()));
        }
    }
    let mut command = command;
    for (id, value, secret) in defaults {
        // `--help` shows defaults: a secret's must not show there either.
        command = command.mut_arg(id, |arg: Arg| {
            arg.default_value(value).hide_default_value(secret)
        });
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in names {
        let mut failure = None;
        command = command.mut_subcommand(&name, |sub| {
            match with_defaults(sub.clone(), file, args, unknown) {
                Ok(sub) => sub,
                Err(error) => {
                    failure = Some(error);
                    sub
                }
            }
        });
        if let Some(error) = failure {
            return Err(error);
        }
    }
    Ok(command)
}

/// Whether `args` give `arg` by its long flag (`--flag value` or `--flag=value`).
fn flag_given(arg: &Arg, args: &[OsString]) -> bool {
    let Some(long) = arg.get_long() else {
        return false;
    };
    let flag = format!("--{long}");
    let with_value = format!("{flag}=");
    args.iter()
        .filter_map(|a| a.to_str())
        .any(|a| a == flag || a.starts_with(&with_value))
}

/// The secret in the file `path`, without its final line break.
fn secret(variable: &str, path: &OsString) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
        .map_err(|e| {
            format!(
                "cannot read {variable} ({}): {e}",
                Path::new(path).display()
            )
        })
}

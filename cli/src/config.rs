//! `pim`'s own settings file, written by `pim configure`: the API's URL and region, so they
//! need not be given with every command. It lives at `$PIM_CONFIG`, else
//! `$XDG_CONFIG_HOME/pim/config.toml`, else `~/.config/pim/config.toml`. Credentials are
//! never stored here: they come from the AWS credential chain.

use crate::failure::Failure;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The settings file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The API's URL (`https://abc123.execute-api.eu-west-1.amazonaws.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The API's region, when the URL does not say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Where the settings file is, or `None` when no home is known.
pub fn path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(path) = var("PIM_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("pim").join("config.toml"))
}

/// Reads the settings file; a missing file is empty settings.
pub fn load() -> Result<FileConfig, Failure> {
    let Some(path) = path() else { return Ok(FileConfig::default()) };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(err) => return Err(Failure::usage(format!("cannot read {}: {err}", path.display()))),
    };
    toml::from_str(&text).map_err(|err| {
        Failure::usage(format!("{} is not a valid pim settings file: {err}", path.display()))
            .hint("run `pim configure --endpoint URL` to write it again")
    })
}

/// Writes the settings file, creating its folder.
pub fn save(config: &FileConfig) -> Result<PathBuf, Failure> {
    let path = path().ok_or_else(|| {
        Failure::usage("no place for the settings file: set HOME, XDG_CONFIG_HOME or PIM_CONFIG")
    })?;
    let write = || -> std::io::Result<()> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        let text = toml::to_string(config).expect("settings serialize");
        std::fs::write(&path, format!("# Written by `pim configure`.\n{text}"))
    };
    write().map_err(|err| Failure::usage(format!("cannot write {}: {err}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_back_what_was_written_and_refuse_unknown_keys() {
        let config = FileConfig {
            endpoint: Some("https://abc.execute-api.eu-west-1.amazonaws.com".into()),
            region: None,
        };
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<FileConfig>(&text).unwrap(), config);
        assert!(toml::from_str::<FileConfig>("endpiont = \"x\"").is_err());
    }
}

//! `pim configure`: saves the API's URL (and region) in `pim`'s settings file, so that
//! other commands need neither `--endpoint` nor `PIM_ENDPOINT`.

use super::Global;
use crate::config::{self, FileConfig};
use crate::failure::Failure;
use clap::Args;

/// `pim configure`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pim configure --endpoint https://abc123.execute-api.eu-west-1.amazonaws.com
  pim configure --endpoint https://pim.example.com --region eu-west-1
  pim configure --show

The file is $PIM_CONFIG, else $XDG_CONFIG_HOME/pim/config.toml, else ~/.config/pim/config.toml.
Credentials are not stored: they come from your AWS profile (--profile, AWS_PROFILE, SSO).")]
pub struct ConfigureArgs {
    /// Print the saved settings and where they are, and change nothing.
    #[arg(long)]
    pub show: bool,
}

/// Runs `pim configure`.
pub async fn run(args: ConfigureArgs, global: &Global) -> Result<(), Failure> {
    let mut saved = config::load()?;
    let path = config::path().map(|p| p.display().to_string()).unwrap_or_default();
    if args.show || (global.endpoint.is_none() && global.region.is_none()) {
        print!("{}", describe(&saved, &path));
        if !args.show {
            eprintln!("nothing to save: give --endpoint URL and/or --region REGION");
        }
        return Ok(());
    }
    if let Some(endpoint) = &global.endpoint {
        let url = reqwest::Url::parse(endpoint)
            .map_err(|err| super::bad_value("--endpoint", format!("'{endpoint}': {err}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(super::bad_value("--endpoint", "use an https:// URL"));
        }
        saved.endpoint = Some(endpoint.trim_end_matches('/').to_string());
    }
    if let Some(region) = &global.region {
        saved.region = Some(region.clone());
    }
    let path = config::save(&saved)?;
    print!("{}", describe(&saved, &path.display().to_string()));
    println!("check it with `pim roles`");
    Ok(())
}

fn describe(config: &FileConfig, path: &str) -> String {
    format!(
        "settings file: {path}\nendpoint: {}\nregion: {}\n",
        config.endpoint.as_deref().unwrap_or("(none)"),
        config.region.as_deref().unwrap_or("(from the endpoint or your AWS profile)")
    )
}

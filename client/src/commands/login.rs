//! `notar login` and `notar logout`: credentials kept where `docker login` keeps them, so
//! either tool's login serves both.
//!
//! With a credential helper configured for the host (`credHelpers`, or `credsStore`), the
//! helper stores them; otherwise `auths.<host>.auth` in `$DOCKER_CONFIG/config.json` (or
//! `~/.docker/config.json`), written 0600 through a temporary file.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use base64::Engine as _;
use clap::Args;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::commands::args::ServerArgs;
use crate::oci::auth::{
    Credentials, docker_config_dir, helper_for, read_docker_config, run_helper,
};
use crate::trust::server::Server;
use crate::{Context, Error};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// host[:port] of the trust server or registry (default: the trust server)
    pub host: Option<String>,
    /// User name (asked when stdin is a terminal and this is missing)
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password from stdin (its first line)
    #[arg(long)]
    pub password_stdin: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// host[:port] of the trust server or registry (default: the trust server)
    pub host: Option<String>,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// The server a host names: the trust server itself, or `https://host` (`http://` on
/// loopback).
fn server_for(ctx: &Context, host: Option<&str>) -> Result<Server, Error> {
    match host {
        None => Ok(ctx.server.clone()),
        Some(host) if host == ctx.server.authority() => Ok(ctx.server.clone()),
        Some(host) => {
            let loopback = reqwest::Url::parse(&format!("http://{host}"))
                .ok()
                .and_then(|u| u.host_str().map(crate::oci::auth::is_loopback_host))
                .unwrap_or(false);
            let scheme = if loopback { "http" } else { "https" };
            Server::with_ca(
                &format!("{scheme}://{host}"),
                ctx.ca_cert.as_deref(),
                ctx.home.as_deref(),
            )
        }
    }
}

pub async fn login(ctx: &Context, args: LoginArgs) -> Result<(), Error> {
    let server = server_for(ctx, args.host.as_deref())?;
    let host = server.authority().to_owned();
    let terminal = std::io::stdin().is_terminal();
    let user = match args.username {
        Some(user) => user,
        None if terminal && !args.password_stdin => {
            eprint!("Username for {host}: ");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(Error::io("reading the user name from", "stdin"))?;
            line.trim().to_owned()
        }
        None => {
            return Err(Error::Usage(
                "give --username (stdin is not a terminal, or carries the password)".into(),
            ));
        }
    };
    if user.is_empty() || user.contains(':') {
        return Err(Error::Usage(format!("{user:?} is not a user name")));
    }
    let password = if args.password_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(Error::io("reading the password from", "stdin"))?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    } else if terminal {
        Zeroizing::new(
            rpassword::prompt_password(format!("Password for {user}@{host}: "))
                .map_err(Error::io("reading the password from", "the terminal"))?,
        )
    } else {
        return Err(Error::Usage(
            "give the password with --password-stdin (stdin is not a terminal)".into(),
        ));
    };
    if password.is_empty() {
        return Err(Error::Usage("an empty password is not a password".into()));
    }
    let credentials = Credentials::new(user, password.as_str());
    let asked = server.login(&credentials).await?;
    store(&host, &credentials)?;
    let mut out = std::io::stdout().lock();
    if !asked {
        writeln!(out, "{host} asks for no credentials; kept them anyway").map_err(Error::Output)?;
    }
    writeln!(out, "Login Succeeded").map_err(Error::Output)?;
    Ok(())
}

pub fn logout(ctx: &Context, args: LogoutArgs) -> Result<(), Error> {
    let host = match args.host {
        Some(host) => host,
        None => ctx.server.authority().to_owned(),
    };
    let mut config = read_docker_config();
    let mut removed = false;
    if let Some(helper) = helper_for(&config, &host) {
        removed |= run_helper(&helper, "erase", host.as_bytes()).is_ok();
    }
    if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| {
                k.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    == host
            })
            .cloned()
            .collect();
        for key in keys {
            auths.remove(&key);
            removed = true;
        }
        write_config(&config)?;
    }
    let mut out = std::io::stdout().lock();
    if removed {
        writeln!(out, "Removed the credentials of {host}").map_err(Error::Output)?;
    } else {
        writeln!(out, "Not logged in to {host}").map_err(Error::Output)?;
    }
    Ok(())
}

/// Keeps `credentials` for `host`: in its credential helper, or in `auths`.
fn store(host: &str, credentials: &Credentials) -> Result<(), Error> {
    let mut config = read_docker_config();
    if let Some(helper) = helper_for(&config, host) {
        let input = Zeroizing::new(
            json!({
                "ServerURL": host,
                "Username": credentials.user,
                "Secret": credentials.password(),
            })
            .to_string(),
        );
        return run_helper(&helper, "store", input.as_bytes())
            .map(|_| ())
            .map_err(|reason| {
                Error::Usage(format!("storing the credentials of {host}: {reason}"))
            });
    }
    let pair = Zeroizing::new(format!("{}:{}", credentials.user, credentials.password()));
    let auth = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
    if !config.is_object() {
        config = json!({});
    }
    let auths = config
        .as_object_mut()
        .and_then(|c| {
            c.entry("auths")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        })
        .ok_or_else(|| Error::Usage("the Docker config's \"auths\" is not an object".into()))?;
    auths.insert(host.to_owned(), json!({ "auth": auth }));
    write_config(&config)
}

/// Writes the Docker config, 0600, through a temporary file beside it.
fn write_config(config: &Value) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = docker_config_dir()
        .ok_or_else(|| Error::Usage("no HOME or DOCKER_CONFIG to keep credentials in".into()))?;
    std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
    let path = dir.join("config.json");
    let tmp = dir.join(".config.json.notar-tmp");
    let text = Zeroizing::new(
        serde_json::to_string_pretty(config).map_err(|e| Error::Usage(e.to_string()))?,
    );
    let write = |p: &Path| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(p)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    };
    write(&tmp).map_err(Error::io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io("writing", &path))
}

//! The `notar-server` binary: settings, logging, bind, serve until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use notar_server::config::{Args, AuditCommand, Command, Config, LogFormat, UserCommand};
use notar_server::serve::{self, ServeOptions, TlsReloader};
use notar_server::{AppState, load_secret};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    // These need no settings, no data directory and no secret.
    match &args.command {
        Some(Command::Completion { shell }) => {
            use clap::CommandFactory;
            let mut command = Args::command();
            clap_complete::generate(*shell, &mut command, "notar-server", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Man) => {
            use clap::CommandFactory;
            return match clap_mangen::Man::new(Args::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("notar-server: error: writing the manual page: {e}");
                    ExitCode::from(2)
                }
            };
        }
        _ => {}
    }
    let command = args.command.take();
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("notar-server: error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let result = match command {
        None => serve(config).await,
        Some(Command::User(user)) => users(&config, user),
        Some(Command::IssuerCert) => issuer_cert(config).await,
        Some(Command::Completion { .. } | Command::Man) => Ok(()),
        Some(Command::Healthcheck) => match healthcheck(&config).await {
            Ok(()) => Ok(()),
            Err(e) => {
                eprintln!("notar-server: not ready: {e}");
                return ExitCode::from(1);
            }
        },
        Some(Command::Backup { file }) => backup(&config, &file).await,
        Some(Command::Prune { keep }) => prune(&config, keep).await,
        Some(Command::Check { within_days }) => match check(&config, within_days).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Some(Command::Restore { file }) => restore(&config, &file).await,
        Some(Command::Import { from, signer_from }) => {
            import(&config, &from, signer_from.as_deref()).await
        }
        Some(Command::Audit(AuditCommand::Verify)) => match audit_verify(&config).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("notar-server: error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    notar_server::secure_data_dir(&config).map_err(|e| {
        format!(
            "preparing data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let secret = open_secret(&config).await?;
    let listen = config.listen;
    let tls = match &config.tls {
        Some((cert, key)) => Some(TlsReloader::load(cert, key)?),
        None => None,
    };
    if !listen.ip().is_loopback() {
        if tls.is_none() && !config.insecure_http {
            return Err(format!(
                "refusing to serve plain HTTP on the non-loopback address {listen}: give --tls-cert and --tls-key, \
                 or --insecure-http if a TLS-terminating proxy is in front"
            )
            .into());
        }
        if tls.is_none() {
            tracing::warn!(%listen, "--insecure-http: serving plain HTTP on a non-loopback address");
        }
        if config.auth.is_none() {
            if !config.auth_none_chosen {
                return Err(format!(
                    "refusing to serve {listen} without authentication: anyone who could reach it could \
                     publish, rotate keys or delete repositories. Give --issuer (built-in accounts) or \
                     --auth-type token with --auth-realm and --auth-root-certs, or --auth-type none to \
                     serve without authentication anyway"
                )
                .into());
            }
            tracing::warn!(
                %listen,
                "--auth-type none on a non-loopback address: anyone who can reach it can publish"
            );
        }
    }
    let options = ServeOptions {
        tls: tls.clone(),
        max_connections: config.max_connections,
        header_timeout: config.header_timeout,
        ..ServeOptions::plain()
    };
    let state = AppState::open(config.clone(), secret, notar_keys::KdfParams::default()).await?;
    if let Some(issuer) = &state.issuer {
        // The certificate is public: kept beside the data for the bundles of registries.
        let path = config.data_dir.join("issuer.crt");
        std::fs::write(&path, issuer.certificate_pem())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        tracing::info!(certificate = %path.display(), key_id = issuer.key_id(), "token issuer ready");
    }
    // SQLite made its -wal and -shm files on open; they are kept private too.
    notar_server::secure_data_dir(&config)
        .map_err(|e| format!("securing data directory {}: {e}", config.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    if let Some(tls) = tls {
        tokio::spawn(reload_on_sighup(tls));
    }
    if let Some(metrics) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(metrics)
            .await
            .map_err(|e| format!("listening for metrics on {metrics}: {e}"))?;
        tracing::info!(metrics = %listener.local_addr()?, "serving /metrics");
        let app = notar_server::api::metrics_app(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let shutdown = shutdown_signal();
    tracing::info!(
        listen = %listener.local_addr()?,
        tls = options.tls.is_some(),
        "notar-server ready"
    );
    serve::run(listener, state, shutdown, options).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The server secret, from `NOTAR_SERVER_SECRET` or the secret file. A missing file is
/// made only for a database that holds no keys yet: when keys are there, the secret they
/// were sealed under was lost, and writing a new one would only hide that.
async fn open_secret(
    config: &Config,
) -> Result<zeroize::Zeroizing<String>, Box<dyn std::error::Error>> {
    use notar_server::store::Store;
    let from_env = std::env::var("NOTAR_SERVER_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    let file = config.data_dir.join("server.secret");
    if from_env.is_none() && !file.exists() {
        let store = notar_server::store::sql::SqlStore::connect(&config.database).await?;
        let sealed = store.any_key().await?.is_some() || store.issuer_key().await?.is_some();
        store.close().await;
        if sealed {
            return Err(format!(
                "the server secret {} is missing, and the database holds keys sealed under it: \
                 restore that file from the backup you keep beside the database (or set \
                 NOTAR_SERVER_SECRET to the secret); no new secret was written",
                file.display()
            )
            .into());
        }
    }
    Ok(load_secret(&config.data_dir, from_env)?)
}

/// `notar-server user …`: edits the accounts file.
fn users(config: &Config, command: UserCommand) -> Result<(), Box<dyn std::error::Error>> {
    use notar_server::accounts::{Account, Accounts, check_name, hash_password};
    use std::io::Write;
    let path = &config.accounts_file;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let mut accounts = Accounts::load(path)?;
    let mut out = std::io::stdout().lock();
    match command {
        UserCommand::Add {
            name,
            groups,
            password_stdin,
        } => {
            check_name(&name)?;
            let password = if password_stdin {
                let mut line = zeroize::Zeroizing::new(String::new());
                std::io::stdin().read_line(&mut line)?;
                zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                let first = zeroize::Zeroizing::new(rpassword::prompt_password(format!(
                    "Password for {name}: "
                ))?);
                let second =
                    zeroize::Zeroizing::new(rpassword::prompt_password("Repeat the password: ")?);
                if *first != *second {
                    return Err("the passwords do not match; nothing changed".into());
                }
                first
            };
            if password.is_empty() {
                return Err("an empty password is not a password; nothing changed".into());
            }
            let existed = accounts.users.contains_key(&name);
            accounts.users.insert(
                name.clone(),
                Account {
                    password: hash_password(&password)?,
                    groups,
                },
            );
            accounts.save(path)?;
            let verb = if existed { "Updated" } else { "Added" };
            writeln!(out, "{verb} user {name} in {}", path.display())?;
        }
        UserCommand::Remove { name } => {
            if accounts.users.remove(&name).is_none() {
                return Err(
                    format!("no user {name} in {}; nothing changed", path.display()).into(),
                );
            }
            accounts.save(path)?;
            writeln!(out, "Removed user {name} from {}", path.display())?;
        }
        UserCommand::List => {
            for (name, account) in &accounts.users {
                if account.groups.is_empty() {
                    writeln!(out, "{name}")?;
                } else {
                    writeln!(out, "{name}\t{}", account.groups.join(","))?;
                }
            }
        }
    }
    Ok(())
}

/// `notar-server audit verify`: walks the chain in pages; false when it is broken.
async fn audit_verify(config: &Config) -> Result<bool, Box<dyn std::error::Error>> {
    use notar_server::store::Store;
    use std::io::Write;
    let store = notar_server::store::sql::SqlStore::connect(&config.database).await?;
    let mut last = (0, notar_server::audit::GENESIS.to_owned());
    let mut out = std::io::stdout().lock();
    loop {
        let page = store.audit_records(last.0, 1000).await?;
        if page.is_empty() {
            break;
        }
        match notar_server::audit::verify(&page, last) {
            Ok(next) => last = next,
            Err(broken) => {
                writeln!(out, "the audit trail is broken at {broken}")?;
                return Ok(false);
            }
        }
    }
    writeln!(
        out,
        "{} audit records, chain intact; last hash {}",
        last.0, last.1
    )?;
    Ok(true)
}

/// `notar-server check`: false when some repository does not verify.
async fn check(config: &Config, within_days: u32) -> Result<bool, Box<dyn std::error::Error>> {
    use std::io::Write;
    notar_server::secure_data_dir(config)?;
    let store: std::sync::Arc<dyn notar_server::store::Store> =
        std::sync::Arc::new(notar_server::store::sql::SqlStore::connect(&config.database).await?);
    let now = time::OffsetDateTime::now_utc();
    let horizon = now + time::Duration::days(i64::from(within_days));
    let guns = store.guns().await?;
    let mut out = std::io::stdout().lock();
    let mut broken = 0;
    for gun in &guns {
        let report =
            notar_server::check::check_repository(std::sync::Arc::clone(&store), gun, now, horizon)
                .await?;
        if let Some(problem) = &report.problem {
            broken += 1;
            writeln!(out, "{gun}: does not verify: {problem}")?;
        }
        for (role, at) in &report.expiring {
            let at = at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            writeln!(out, "{gun}: {role} expires {at}")?;
        }
    }
    writeln!(
        out,
        "{} repositories checked, {broken} do not verify",
        guns.len()
    )?;
    Ok(broken == 0)
}

/// `notar-server healthcheck`: one plain-HTTP GET of /readyz, 5 s at most.
async fn healthcheck(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = match (config.metrics_listen, &config.tls) {
        (Some(metrics), _) => metrics,
        (None, None) => config.listen,
        (None, Some(_)) => {
            return Err(
                "the server speaks TLS on --listen: give --metrics-listen for health checks".into(),
            );
        }
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.take(4096).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), ask)
        .await
        .map_err(|_| format!("{addr} did not answer within 5 s"))??;
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        let line = String::from_utf8_lossy(&answer);
        Err(format!(
            "{addr} answered {}",
            line.lines().next().unwrap_or("nothing")
        )
        .into())
    }
}

/// `notar-server prune --keep N`.
async fn prune(config: &Config, keep: u64) -> Result<(), Box<dyn std::error::Error>> {
    use notar_server::store::Store;
    use std::io::Write;
    if keep == 0 {
        return Err("--keep must be at least 1: the current versions always stay".into());
    }
    notar_server::secure_data_dir(config)?;
    let store = notar_server::store::sql::SqlStore::connect(&config.database).await?;
    let origin = notar_server::audit::Origin {
        actor: Some("notar-server prune".into()),
        remote: None,
    };
    let mut total = 0;
    let guns = store.guns().await?;
    for gun in &guns {
        total += store.prune(gun, keep, &origin).await?;
    }
    store.close().await;
    writeln!(
        std::io::stdout().lock(),
        "Removed {total} old metadata files from {} repositories (kept the newest {keep} of each role, and every root)",
        guns.len()
    )?;
    Ok(())
}

async fn import(
    config: &Config,
    from: &str,
    signer_from: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    for url in std::iter::once(from).chain(signer_from) {
        if notar_server::import::Engine::of_url(url).is_none() {
            return Err(format!(
                "{url:?}: only PostgreSQL (postgres://…) and MySQL (mysql://…) databases of notary-server and notary-signer can be imported"
            )
            .into());
        }
    }
    let started = std::time::Instant::now();
    let (files, changes) = notar_server::import::read_server(from).await?;
    let plan = notar_server::import::plan(files, changes)?;
    let keys = match signer_from {
        Some(url) => notar_server::import::plan_keys(
            notar_server::import::read_signer(url).await?,
            |alias| {
                std::env::var(format!("NOTARY_SIGNER_{}", alias.to_ascii_uppercase()))
                    .ok()
                    .map(zeroize::Zeroizing::new)
            },
            &plan,
        )?,
        None => Vec::new(),
    };
    notar_server::secure_data_dir(config)?;
    let secret = open_secret(config).await?;
    let origin = notar_server::audit::Origin {
        actor: Some("notar-server import".into()),
        remote: None,
    };
    {
        let store = notar_server::store::sql::SqlStore::connect(&config.database).await?;
        let written = store.import_as(&plan.repos, &origin).await;
        store.close().await;
        written?;
    }
    if !keys.is_empty() {
        let state =
            AppState::open(config.clone(), secret, notar_keys::KdfParams::default()).await?;
        for imported in &keys {
            state
                .keys
                .import(
                    &imported.gun,
                    imported.role,
                    &imported.key,
                    imported.created,
                    &origin,
                )
                .await
                .map_err(|e| e.message)?;
        }
    }
    let notary = plan
        .dialects
        .values()
        .filter(|d| **d == notar_tuf::notary::Dialect::Notary)
        .count();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Imported {} repositories ({notary} in the Notary dialect): {} metadata files, {} changes, {} server-held keys, in {:.1} s.",
        plan.repos.len(),
        plan.files(),
        plan.changes(),
        keys.len(),
        started.elapsed().as_secs_f64()
    )?;
    if signer_from.is_none() {
        writeln!(
            out,
            "Server-held timestamp and snapshot keys stay with notary-signer (give --signer-from to \
             import them): until an owner runs `notary key rotate <gun> timestamp -r` (and \
             `snapshot -r` where the server held it), a repository is served but cannot be updated"
        )?;
    }
    Ok(())
}

/// What every backup and restore says: the secret lives apart from the database.
const SECRET_REMINDER: &str = "the server secret (server.secret in the data directory, or \
NOTAR_SERVER_SECRET) is not in the backup: keep it too, apart from the backup, or the keys in \
the backup cannot be opened";

/// `notar-server backup FILE`.
async fn backup(config: &Config, file: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    if file.exists() {
        return Err(format!("{} exists; give a new file", file.display()).into());
    }
    notar_server::secure_data_dir(config)?;
    let store = notar_server::store::sql::SqlStore::connect(&config.database).await?;
    store.backup_to(file).await?;
    store.close().await;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Wrote {}", file.display())?;
    writeln!(out, "Note: {SECRET_REMINDER}")?;
    Ok(())
}

/// `notar-server restore FILE`: checks the backup (it opens, its audit chain holds), then
/// moves a copy into place of the database, dropping the old write-ahead log.
async fn restore(
    config: &Config,
    file: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use notar_server::store::Store;
    use std::io::Write;
    let db = notar_server::config::sqlite_path(&config.database)
        .ok_or("restore puts back SQLite databases; restore PostgreSQL with pg_restore or psql")?;
    notar_server::secure_data_dir(config)?;
    let staged = db.with_extension("db.restoring");
    std::fs::copy(file, &staged).map_err(|e| format!("copying {}: {e}", file.display()))?;
    let checked = async {
        let store = notar_server::store::sql::SqlStore::connect(
            &notar_server::config::sqlite_url_of(&staged),
        )
        .await?;
        let mut last = (0, notar_server::audit::GENESIS.to_owned());
        loop {
            let page = store.audit_records(last.0, 1000).await?;
            if page.is_empty() {
                break;
            }
            last = notar_server::audit::verify(&page, last)?;
        }
        store.close().await;
        Ok::<i64, Box<dyn std::error::Error>>(last.0)
    }
    .await;
    let records = match checked {
        Ok(records) => records,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(format!("{} is not a sound notar backup: {e}", file.display()).into());
        }
    };
    for suffix in ["-wal", "-shm"] {
        for base in [&staged, &db] {
            let mut name = base.clone().into_os_string();
            name.push(suffix);
            match std::fs::remove_file(&name) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
    }
    std::fs::rename(&staged, &db)?;
    notar_server::secure_data_dir(config)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Restored {} from {} ({records} audit records, chain intact)",
        db.display(),
        file.display()
    )?;
    writeln!(out, "Note: {SECRET_REMINDER}")?;
    Ok(())
}

/// `notar-server issuer-cert`: prints the issuer's certificate, making its key if needed.
async fn issuer_cert(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    notar_server::secure_data_dir(&config)?;
    let secret = open_secret(&config).await?;
    let store = notar_server::store::sql::SqlStore::connect(&config.database).await?;
    let settings = config
        .auth
        .as_ref()
        .and_then(|a| a.issuer.clone())
        .unwrap_or_else(|| Config::default_issuer(&config.data_dir, "notar"));
    let issuer = notar_server::issuer::Issuer::open(
        &store,
        std::sync::Arc::new(secret),
        notar_keys::KdfParams::default(),
        settings,
    )
    .await?;
    std::io::stdout()
        .lock()
        .write_all(issuer.certificate_pem().as_bytes())?;
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("NOTAR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Reads the TLS certificate and key again on every SIGHUP; a failed reload keeps the
/// certificate in force and logs why.
async fn reload_on_sighup(tls: TlsReloader) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot watch SIGHUP: the TLS certificate will not be reloaded");
        return;
    };
    while hangups.recv().await.is_some() {
        // Reading files is blocking work: off the async runtime.
        let reloader = tls.clone();
        let reloaded = tokio::task::spawn_blocking(move || reloader.reload()).await;
        let Ok(reloaded) = reloaded else {
            tracing::error!("reloading the TLS certificate panicked; the old one stays");
            continue;
        };
        match reloaded {
            Ok(()) => tracing::info!("reloaded the TLS certificate"),
            Err(e) => {
                tracing::error!(error = %e, "reloading the TLS certificate failed; the old one stays")
            }
        }
    }
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal sent as soon as the server
/// says it is ready is never lost to the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => {}
            () = wait(terminate) => {}
        }
        tracing::info!("shutting down");
    }
}

//! `notar agent [--lifetime 15m]`, `notar agent --status`, `notar agent --stop`: starts,
//! shows or stops the key agent of the trust directory ([`crate::trust::agent`]).

use std::process::Stdio;
use std::time::Duration;

use clap::Args;

use crate::output::{json_line, print};
use crate::trust::agent::{self, Agent};
use crate::{Context, Error};

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// How long the agent keeps keys before it exits and wipes them: 90s, 15m, 2h
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub lifetime: Duration,

    /// Show the running agent: its keys and the time it has left
    #[arg(long, conflicts_with = "stop")]
    pub status: bool,

    /// Stop the running agent; it wipes its keys
    #[arg(long)]
    pub stop: bool,

    /// Run the agent in this process (what `notar agent` starts in the background)
    #[arg(long, hide = true)]
    pub serve: bool,
}

/// At most a day: an agent is for a working session, not a service.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and s, m or h (90s, 15m, 2h)"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{text:?}: the unit is s, m or h")),
    };
    let lifetime = Duration::from_secs(seconds);
    if lifetime.is_zero() || lifetime > MAX_LIFETIME {
        return Err(format!("{text:?}: between 1s and 24h"));
    }
    Ok(lifetime)
}

pub async fn run(ctx: &Context, args: AgentArgs) -> Result<(), Error> {
    let socket = agent::socket_path(&ctx.trust_dir);
    if args.serve {
        return agent::serve(&ctx.trust_dir, &socket, args.lifetime).await;
    }
    let running = {
        let dir = ctx.trust_dir.clone();
        tokio::task::spawn_blocking(move || Agent::find(&dir))
            .await
            .map_err(Error::Task)?
    };
    let failed = |action: &str, reason: String| Error::Agent {
        action: action.to_owned(),
        reason,
    };
    if args.stop {
        let Some(agent) = running else {
            return Err(failed(
                "stopping",
                format!("no agent answers on {}", socket.display()),
            ));
        };
        tokio::task::spawn_blocking(move || agent.stop())
            .await
            .map_err(Error::Task)?
            .map_err(|e| failed("stopping", e))?;
        // It removes its socket as it exits.
        for _ in 0..100 {
            if !socket.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "notar: the agent on {} stopped; its keys are wiped",
            socket.display()
        );
        return Ok(());
    }
    if args.status {
        let Some(agent) = running else {
            return Err(failed(
                "asking",
                format!("no agent answers on {}", socket.display()),
            ));
        };
        let status = tokio::task::spawn_blocking(move || agent.status())
            .await
            .map_err(Error::Task)?
            .map_err(|e| failed("asking", e))?;
        if ctx.json {
            return print(&json_line(&status));
        }
        let keys: Vec<String> = status.keys.iter().map(ToString::to_string).collect();
        return print(&format!(
            "agent {} on {}: {} keys ({}), {} s left\n",
            status.pid,
            status.socket,
            keys.len(),
            keys.join(", "),
            status.seconds_left
        ));
    }
    if running.is_some() {
        return Err(failed(
            "starting",
            format!(
                "an agent already runs on {}: `notar agent --stop` first",
                socket.display()
            ),
        ));
    }
    std::fs::create_dir_all(&ctx.trust_dir).map_err(Error::io("creating", &ctx.trust_dir))?;
    let exe = std::env::current_exe().map_err(Error::io("finding", "the notar binary"))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--trust-dir")
        .arg(&ctx.trust_dir)
        .args(["agent", "--serve", "--lifetime"])
        .arg(format!("{}s", args.lifetime.as_secs()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own process group: a Ctrl-C in this terminal does not reach it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .spawn()
        .map_err(Error::io("starting", "notar agent --serve"))?;
    let pid = child.id();
    for _ in 0..250 {
        let dir = ctx.trust_dir.clone();
        if tokio::task::spawn_blocking(move || Agent::find(&dir))
            .await
            .map_err(Error::Task)?
            .is_some()
        {
            eprintln!(
                "notar: the agent (pid {pid}) keeps unlocked keys for {} s on {}; `notar agent --stop` wipes them",
                args.lifetime.as_secs(),
                socket.display()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(failed(
        "starting",
        format!("it did not answer on {} within 5 s", socket.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        for bad in ["", "0s", "25h", "5d", "m", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

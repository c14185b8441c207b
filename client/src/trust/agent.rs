//! `notar agent`: a process that holds unlocked keys in memory for a bounded time, as
//! ssh-agent does, so that a CI loop or a person signing many tags types (and derives)
//! each passphrase once.
//!
//! - The agent listens on `<trust-dir>/agent.sock` (or `NOTAR_AGENT_SOCK`), a Unix socket
//!   of mode 0600, and answers only connections from its own user (the peer's uid is
//!   checked against the socket's owner).
//! - A command that needs a key asks the agent first. If the agent holds the key, it signs
//!   there: the key never leaves the agent. If not, the command gets the passphrase as
//!   always and hands it to the agent, which decrypts the key file itself (one argon2id)
//!   and keeps the key. A wrong passphrase is refused as it would be without an agent.
//! - Keys never touch the disk decrypted. The agent exits, wiping them (they zeroize on
//!   drop), when its lifetime is over or on `notar agent --stop`.
//!
//! The protocol is one JSON object per line each way: `ping`, `has`, `unlock`, `sign`,
//! `status`, `stop`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use notar_keys::{KeyStore, PrivateKey};
use notar_tuf::{KeyId, PublicKey, Signer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;

/// The socket's name in the trust directory.
pub const SOCKET_NAME: &str = "agent.sock";
/// Overrides where the socket is.
pub const SOCKET_ENV: &str = "NOTAR_AGENT_SOCK";

/// How long a client waits for one answer (an unlock runs argon2id in the agent).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest request line the agent reads.
const MAX_REQUEST_BYTES: u64 = 1 << 20;

/// Where the agent of `trust_dir` listens.
pub fn socket_path(trust_dir: &Path) -> PathBuf {
    match std::env::var_os(SOCKET_ENV).filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => trust_dir.join(SOCKET_NAME),
    }
}

/// No `Debug`: an unlock carries a passphrase.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Ping,
    Has { key_id: KeyId },
    Unlock { key_id: KeyId, passphrase: String },
    Sign { key_id: KeyId, message: String },
    Status,
    Stop,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Answer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<KeyId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seconds_left: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
}

/// What `notar agent --status` reports.
#[derive(Debug, Serialize)]
pub struct Status {
    pub socket: String,
    pub pid: u32,
    pub keys: Vec<KeyId>,
    pub seconds_left: u64,
}

/// A connection point to a running agent.
#[derive(Clone, Debug)]
pub struct Agent {
    socket: PathBuf,
}

impl Agent {
    /// The agent of `trust_dir`, if one answers.
    pub fn find(trust_dir: &Path) -> Option<Agent> {
        let agent = Agent {
            socket: socket_path(trust_dir),
        };
        if !agent.socket.exists() {
            return None;
        }
        agent.call(&Request::Ping).ok().map(|_| agent)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// One request and its answer, on a connection of its own. Blocking.
    fn call(&self, request: &Request) -> Result<Answer, String> {
        let mut stream = UnixStream::connect(&self.socket)
            .map_err(|e| format!("connecting to {}: {e}", self.socket.display()))?;
        let _ = stream.set_read_timeout(Some(ANSWER_TIMEOUT));
        let mut line = Zeroizing::new(serde_json::to_string(request).map_err(|e| e.to_string())?);
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .map_err(|e| format!("writing to the agent: {e}"))?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .map_err(|e| format!("reading the agent's answer: {e}"))?;
        let answer: Answer = serde_json::from_str(&answer)
            .map_err(|e| format!("the agent answered something else than JSON: {e}"))?;
        match answer.error {
            Some(error) => Err(error),
            None => Ok(answer),
        }
    }

    /// The public key of `key_id` if the agent holds it.
    pub fn holds(&self, key_id: &KeyId) -> Option<PublicKey> {
        self.call(&Request::Has {
            key_id: key_id.clone(),
        })
        .ok()
        .and_then(|a| a.public_key)
    }

    /// Asks the agent to decrypt `key_id` from its trust directory with `passphrase`
    /// and keep it. Blocking (argon2id runs in the agent).
    pub fn unlock(&self, key_id: &KeyId, passphrase: &str) -> Result<PublicKey, String> {
        self.call(&Request::Unlock {
            key_id: key_id.clone(),
            passphrase: passphrase.to_owned(),
        })?
        .public_key
        .ok_or_else(|| "the agent did not say which key it unlocked".to_owned())
    }

    fn sign(&self, key_id: &KeyId, message: &[u8]) -> Result<Vec<u8>, String> {
        let answer = self.call(&Request::Sign {
            key_id: key_id.clone(),
            message: base64::engine::general_purpose::STANDARD.encode(message),
        })?;
        let signature = answer
            .signature
            .ok_or_else(|| "the agent returned no signature".to_owned())?;
        base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|e| format!("the agent's signature is not base64: {e}"))
    }

    pub fn status(&self) -> Result<Status, String> {
        let answer = self.call(&Request::Status)?;
        Ok(Status {
            socket: self.socket.display().to_string(),
            pid: answer.pid.unwrap_or_default(),
            keys: answer.keys.unwrap_or_default(),
            seconds_left: answer.seconds_left.unwrap_or_default(),
        })
    }

    pub fn stop(&self) -> Result<(), String> {
        self.call(&Request::Stop).map(|_| ())
    }
}

/// A key held by the agent: signs there.
#[derive(Debug)]
pub struct AgentKey {
    agent: Agent,
    key_id: KeyId,
    public: PublicKey,
}

impl AgentKey {
    pub fn new(agent: Agent, key_id: KeyId, public: PublicKey) -> Self {
        AgentKey {
            agent,
            key_id,
            public,
        }
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }
}

impl Signer for AgentKey {
    fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// The agent's signature. Should the agent go away between the unlock and this call,
    /// the signature is empty: the metadata then fails verification (locally and on the
    /// server) instead of being published, and the error says why.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self.agent.sign(&self.key_id, message) {
            Ok(signature) => signature,
            Err(e) => {
                eprintln!(
                    "notar: error: the agent did not sign with key {}: {e}",
                    self.key_id.short()
                );
                Vec::new()
            }
        }
    }
}

/// Runs an agent for `trust_dir` on `socket` until `lifetime` has passed or a `stop`
/// arrives, then removes the socket; the keys are wiped as they drop.
pub async fn serve(trust_dir: &Path, socket: &Path, lifetime: Duration) -> Result<(), Error> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    let store = KeyStore::open(trust_dir).map_err(Error::keys("opening the key store"))?;
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
    }
    let _ = std::fs::remove_file(socket);
    let listener =
        tokio::net::UnixListener::bind(socket).map_err(Error::io("listening on", socket))?;
    // Until this, the umask's mode (no write for others) already kept them from connecting.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(Error::io("restricting", socket))?;
    let owner = std::fs::metadata(socket)
        .map_err(Error::io("reading", socket))?
        .uid();
    let deadline = Instant::now() + lifetime;
    let mut keys: HashMap<KeyId, PrivateKey> = HashMap::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let accepted = match tokio::time::timeout(left, listener.accept()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                tracing::warn!("accepting a connection: {e}");
                continue;
            }
            Ok(Ok((stream, _))) => stream,
        };
        if !accepted.peer_cred().is_ok_and(|c| c.uid() == owner) {
            continue;
        }
        let (read, mut write) = accepted.into_split();
        let mut line = Zeroizing::new(String::new());
        let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST_BYTES));
        let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
        if !matches!(read, Ok(Ok(n)) if n > 0) {
            continue;
        }
        let (answer, stop) = match serde_json::from_str::<Request>(&line) {
            Err(e) => (
                Answer {
                    error: Some(format!("not a request: {e}")),
                    ..Answer::default()
                },
                false,
            ),
            Ok(request) => answer(&store, &mut keys, request, deadline).await,
        };
        let mut text = serde_json::to_string(&answer).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
        let _ = write.shutdown().await;
        if stop {
            break;
        }
    }
    drop(keys);
    let _ = std::fs::remove_file(socket);
    Ok(())
}

async fn answer(
    store: &KeyStore,
    keys: &mut HashMap<KeyId, PrivateKey>,
    request: Request,
    deadline: Instant,
) -> (Answer, bool) {
    let fail = |error: String| Answer {
        error: Some(error),
        ..Answer::default()
    };
    let answer = match request {
        Request::Ping => Answer::default(),
        Request::Has { key_id } => Answer {
            public_key: keys.get(&key_id).map(PrivateKey::public_key),
            ..Answer::default()
        },
        Request::Unlock { key_id, passphrase } => {
            let passphrase = Zeroizing::new(passphrase);
            match store.load_async(&key_id, passphrase).await {
                Ok(key) => {
                    let public = key.public_key();
                    keys.insert(key_id, key);
                    Answer {
                        public_key: Some(public),
                        ..Answer::default()
                    }
                }
                Err(e) => fail(crate::error::one_line(&e)),
            }
        }
        Request::Sign { key_id, message } => match keys.get(&key_id) {
            None => fail(format!("the agent does not hold key {}", key_id.short())),
            Some(key) => match base64::engine::general_purpose::STANDARD.decode(message) {
                Ok(message) => Answer {
                    signature: Some(
                        base64::engine::general_purpose::STANDARD
                            .encode(Signer::sign(key, &message)),
                    ),
                    ..Answer::default()
                },
                Err(e) => fail(format!("the message is not base64: {e}")),
            },
        },
        Request::Status => Answer {
            keys: Some(keys.keys().cloned().collect()),
            seconds_left: Some(deadline.saturating_duration_since(Instant::now()).as_secs()),
            pid: Some(std::process::id()),
            ..Answer::default()
        },
        Request::Stop => return (Answer::default(), true),
    };
    (answer, false)
}

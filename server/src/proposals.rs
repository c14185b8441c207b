//! Co-signing proposals: uploads that lack signatures, kept until co-signers add them.
//!
//! - `POST /v2/<gun>/_trust/proposals/` takes an upload as `POST …/_trust/tuf/` does. It must
//!   pass every rule of an update but the thresholds, and every signature in it must verify
//!   by a key its role lists ([`validate::Signatures::Proposal`]). An upload that meets every
//!   threshold already is published at once. Otherwise it is kept, replacing any proposal
//!   that shares a role with it, for the configured lifetime (or until its metadata expires).
//! - `GET …/_trust/proposals/` lists the live proposals with their files as signed so far;
//!   expired ones are dropped as they are met.
//! - `POST …/_trust/proposals/<id>` adds signatures, `{"signatures": {"<role>": [{"keyid",
//!   "sig"}]}}`. A signature that does not verify over the proposal's bytes, or by a key the
//!   role does not list, is refused and changes nothing. Once every threshold is met, the
//!   proposal goes through [`update::apply_update`], the path of every upload, whose commit
//!   drops it in the same transaction. A proposal whose role moved on is dropped.
//!
//! Proposals are never served as metadata, so no client ever counts them.

use std::collections::BTreeMap;

use bytes::Bytes;
use notar_tuf::notary::Dialect;
use notar_tuf::{Gun, RoleName, RoleType, Root, Signature, Signed, Snapshot, Targets};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::AppState;
use crate::audit::Origin;
use crate::error::{ApiError, ErrorKind};
use crate::store::StoredProposal;
use crate::update;
use crate::validate::{self, RepoState, Signatures, Unpublished};

/// What became of a proposal or a co-signature.
#[derive(Debug)]
pub enum Outcome {
    /// Every threshold was met: stored as an update.
    Published,
    /// Kept, waiting for more signatures.
    Waiting(String),
}

/// `POST …/_trust/proposals/`.
pub async fn propose(
    state: &AppState,
    gun: &Gun,
    uploads: Vec<(RoleName, Bytes)>,
    origin: &Origin,
) -> Result<Outcome, ApiError> {
    let now = OffsetDateTime::now_utc();
    if judge(state, gun, &uploads, now).await? {
        update::apply_update(state, gun, uploads, origin).await?;
        return Ok(Outcome::Published);
    }
    let expires = uploads
        .iter()
        .filter_map(|(_, bytes)| metadata_expiry(bytes))
        .fold(now + state.config.lifetimes.proposal, OffsetDateTime::min);
    let proposal = StoredProposal {
        id: proposal_id(&uploads)?,
        roles: uploads.iter().map(|(r, _)| r.clone()).collect(),
        files: files_json(&uploads)?,
        revision: 0,
        proposed_by: origin.actor.clone().unwrap_or_default(),
        created: now,
        expires,
    };
    state.store.put_proposal_as(gun, &proposal, origin).await?;
    tracing::info!(gun = %gun, proposal = %proposal.id, roles = ?proposal.roles, "kept a proposal");
    Ok(Outcome::Waiting(proposal.id))
}

/// `GET …/_trust/proposals/`.
pub async fn list(state: &AppState, gun: &Gun) -> Result<Value, ApiError> {
    let mut entries = Vec::new();
    for p in live(state, gun).await? {
        let files: Value = serde_json::from_slice(&p.files)
            .map_err(|_| ApiError::internal("a stored proposal is not JSON"))?;
        entries.push(json!({
            "id": p.id,
            "roles": p.roles.iter().map(RoleName::as_str).collect::<Vec<_>>(),
            "proposed_by": p.proposed_by,
            "proposed_at": p.created.unix_timestamp(),
            "expires_at": p.expires.unix_timestamp(),
            "files": files,
        }));
    }
    Ok(json!({ "proposals": entries }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoSignature {
    signatures: BTreeMap<String, Vec<Signature>>,
}

/// `POST …/_trust/proposals/<id>`.
pub async fn cosign(
    state: &AppState,
    gun: &Gun,
    id: &str,
    body: &[u8],
    origin: &Origin,
) -> Result<Outcome, ApiError> {
    let request: CoSignature = serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed(format!("co-signature: {e}")))?;
    let Some(proposal) = live(state, gun).await?.into_iter().find(|p| p.id == id) else {
        return Err(ApiError::not_found(format!(
            "{gun} has no proposal {id} (it expired, was replaced, or was published)"
        )));
    };
    let mut uploads = stored_files(&proposal)?;
    let mut added = Vec::new();
    for (role, signatures) in &request.signatures {
        let Some((name, bytes)) = uploads.iter_mut().find(|(r, _)| r.as_str() == role) else {
            return Err(ApiError::malformed(format!(
                "proposal {id} has no {role} to sign"
            )));
        };
        *bytes = add_signatures(name, bytes, signatures)?;
        added.extend(signatures.iter().map(|s| s.keyid.to_string()));
    }
    let now = OffsetDateTime::now_utc();
    let complete = match judge(state, gun, &uploads, now).await {
        Ok(complete) => complete,
        Err(e) if e.kind == ErrorKind::Version || e.message.contains("expired") => {
            // The repository moved on under the proposal: it can never be published.
            state
                .store
                .drop_proposal_as(gun, id, &e.message, origin)
                .await?;
            return Err(ApiError::new(
                e.kind,
                format!("proposal {id} was dropped: {}", e.message),
            ));
        }
        Err(e) => return Err(e),
    };
    if complete {
        update::apply_update(state, gun, uploads, origin).await?;
        return Ok(Outcome::Published);
    }
    let files = files_json(&uploads)?;
    if !state
        .store
        .cosign_proposal_as(gun, id, proposal.revision, &files, &added, origin)
        .await?
    {
        return Err(ApiError::version(format!(
            "proposal {id} changed while this signature came: read it again and sign"
        )));
    }
    Ok(Outcome::Waiting(proposal.id))
}

/// Judges `uploads` as a proposal (refusing what breaks any rule but a threshold), and
/// says whether they meet every threshold too.
async fn judge(
    state: &AppState,
    gun: &Gun,
    uploads: &[(RoleName, Bytes)],
    now: OffsetDateTime,
) -> Result<bool, ApiError> {
    let repo = RepoState::from_stored(gun, &state.store.current_all(gun).await?)?;
    if repo.root.is_none() {
        return Err(ApiError::not_found(format!(
            "{gun} has no trust data: its first root and targets are uploaded signed"
        )));
    }
    if repo.dialect == Some(Dialect::Notary) {
        return Err(ApiError::invalid_update(
            "root",
            "co-signing proposals are for TUF 1.0 repositories; Notary's clients sign alone",
        ));
    }
    let keys = update::server_key_ids(state, gun, Dialect::Tuf).await?;
    let read = |uploads: &[(RoleName, Bytes)]| validate::Upload::read(&repo, uploads.to_vec());
    let judged = |signatures| {
        let upload = read(uploads)?;
        validate::check_update_with(&repo, upload, &keys, now, Unpublished::Refuse, signatures)
    };
    judged(Signatures::Proposal)?;
    Ok(judged(Signatures::Threshold).is_ok())
}

/// The proposals of `gun` that have not expired; expired ones are dropped on the way.
async fn live(state: &AppState, gun: &Gun) -> Result<Vec<StoredProposal>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut live = Vec::new();
    for p in state.store.proposals(gun).await? {
        if p.expires <= now {
            state
                .store
                .drop_proposal_as(gun, &p.id, "expired", &Origin::server())
                .await?;
        } else {
            live.push(p);
        }
    }
    Ok(live)
}

/// `bytes` (a role's metadata) with `more` signatures added; a key that signed already
/// keeps its signature.
fn add_signatures(role: &RoleName, bytes: &Bytes, more: &[Signature]) -> Result<Bytes, ApiError> {
    let bad = |e: notar_tuf::Error| ApiError::internal(format!("a stored proposal of {role}: {e}"));
    let raw = bytes.to_vec();
    let out = match role.top_level() {
        Some(RoleType::Root) => Signed::<Root>::from_bytes(raw)
            .and_then(|s| s.with_signatures(more))
            .map(|s| s.bytes()),
        Some(RoleType::Snapshot) => Signed::<Snapshot>::from_bytes(raw)
            .and_then(|s| s.with_signatures(more))
            .map(|s| s.bytes()),
        _ => Signed::<Targets>::from_bytes(raw)
            .and_then(|s| s.with_signatures(more))
            .map(|s| s.bytes()),
    }
    .map_err(bad)?;
    Ok(Bytes::copy_from_slice(&out))
}

/// A proposal's ID: sha256 over each role's name and the canonical JSON of its `signed`
/// part, in role order, so co-signatures (which change only `signatures`) keep it.
fn proposal_id(uploads: &[(RoleName, Bytes)]) -> Result<String, ApiError> {
    let mut sorted: Vec<&(RoleName, Bytes)> = uploads.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (role, bytes) in sorted {
        let value = notar_tuf::cjson::parse_strict(bytes, role.as_str())
            .map_err(|e| ApiError::malformed(format!("{role}: {e}")))?;
        let signed = value
            .get("signed")
            .ok_or_else(|| ApiError::malformed(format!("{role}: no signed part")))?;
        let canonical = notar_tuf::cjson::to_canonical(signed)
            .map_err(|e| ApiError::malformed(format!("{role}: {e}")))?;
        hasher.update(role.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(Sha256::digest(&canonical));
    }
    Ok(hex::encode(hasher.finalize()))
}

fn files_json(uploads: &[(RoleName, Bytes)]) -> Result<Bytes, ApiError> {
    let mut files = serde_json::Map::new();
    for (role, bytes) in uploads {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ApiError::malformed(format!("{role} is not UTF-8")))?;
        files.insert(role.to_string(), Value::String(text.to_owned()));
    }
    serde_json::to_vec(&files)
        .map(Bytes::from)
        .map_err(|_| ApiError::internal("serialising a proposal"))
}

fn stored_files(proposal: &StoredProposal) -> Result<Vec<(RoleName, Bytes)>, ApiError> {
    let files: BTreeMap<String, String> = serde_json::from_slice(&proposal.files)
        .map_err(|_| ApiError::internal("a stored proposal is not JSON"))?;
    files
        .into_iter()
        .map(|(role, text)| {
            let role =
                RoleName::new(role).map_err(|_| ApiError::internal("a stored proposal's role"))?;
            Ok((role, Bytes::from(text)))
        })
        .collect()
}

/// The `expires` of one metadata file, if it reads.
fn metadata_expiry(bytes: &[u8]) -> Option<OffsetDateTime> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let expires = value.get("signed")?.get("expires")?.as_str()?;
    expires
        .parse::<notar_tuf::Expiry>()
        .ok()
        .map(|e| e.datetime())
}

//! `notar-server check`: every repository's trust data, read from the store and verified
//! as a client would (the TUF workflow of `notar-tuf`, from root version 1 along the
//! rotation chain to timestamp, snapshot, targets and every delegation), and the roles
//! that expire soon.

use std::sync::Arc;

use notar_tuf::client::{Fetch, FetchError, Limits, Updater};
use notar_tuf::{Gun, RoleName, Version};
use time::OffsetDateTime;

use crate::path::{MetaRequest, parse_meta};
use crate::store::Store;

/// Serves a repository's files from the store, by the names the workflow asks for (the
/// check, and the web view's pages).
pub(crate) struct StoreFetch {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) gun: Gun,
}

impl Fetch for StoreFetch {
    fn fetch(
        &self,
        name: &str,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send {
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8_lossy()
            .into_owned();
        async move {
            let stem = name.strip_suffix(".json").unwrap_or(&name);
            let Ok(wanted) = parse_meta(stem) else {
                return Ok(None);
            };
            let store_error = |e: crate::store::StoreError| FetchError::Transport(e.to_string());
            let found = match &wanted {
                MetaRequest::Current(role) => self.store.current(&self.gun, role).await,
                MetaRequest::Version(role, v) => self.store.by_version(&self.gun, role, *v).await,
                MetaRequest::Checksum(role, sha) => {
                    self.store.by_checksum(&self.gun, role, sha).await
                }
            }
            .map_err(store_error)?;
            match found {
                Some(meta) if meta.data.len() as u64 > max_len => {
                    Err(FetchError::TooLarge { limit: max_len })
                }
                Some(meta) => Ok(Some(meta.data.to_vec())),
                None => Ok(None),
            }
        }
    }
}

/// What the check found in one repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub gun: Gun,
    /// Why the trust data does not verify, if it does not.
    pub problem: Option<String>,
    /// Current roles that expire before the horizon: (role, expiry).
    pub expiring: Vec<(RoleName, OffsetDateTime)>,
}

/// Verifies `gun` as of `now`, and lists the current roles expiring before `horizon` that
/// a publisher must renew.
pub async fn check_repository(
    store: Arc<dyn Store>,
    gun: &Gun,
    now: OffsetDateTime,
    horizon: OffsetDateTime,
) -> Result<Report, crate::store::StoreError> {
    // The server re-signs timestamps, and snapshots it holds the key of: only what a
    // publisher must renew is listed.
    let server_snapshot = !store.keys(gun, &RoleName::snapshot()).await?.is_empty();
    let mut expiring: Vec<(RoleName, OffsetDateTime)> = store
        .current_all(gun)
        .await?
        .into_iter()
        .filter(|m| m.expires < horizon)
        .filter(|m| m.role != RoleName::timestamp())
        .filter(|m| !(server_snapshot && m.role == RoleName::snapshot()))
        .map(|m| (m.role, m.expires))
        .collect();
    expiring.sort_by_key(|(_, at)| *at);
    let problem = match store
        .by_version(gun, &RoleName::root(), Version::ONE)
        .await?
    {
        None => Some("there is no root version 1 to start from".to_owned()),
        Some(first) => {
            let fetch = StoreFetch {
                store: Arc::clone(&store),
                gun: gun.clone(),
            };
            let walked = async {
                let mut updater = Updater::new(first.data.to_vec(), fetch, now, Limits::default())?;
                updater.refresh().await?;
                updater.load_all_targets().await?;
                Ok::<(), notar_tuf::client::UpdateError>(())
            };
            walked.await.err().map(|e| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            })
        }
    };
    Ok(Report {
        gun: gun.clone(),
        problem,
        expiring,
    })
}

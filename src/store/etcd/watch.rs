//! The watch that feeds the mirror: one etcd watch on the whole prefix,
//! created again whenever it breaks (the mirror starts empty each time,
//! see `mirror`), on the store's runtime.

use super::mirror::{Change, Mirror, HOLD};
use etcd_client::{WatchClient, WatchOptions};
use std::sync::Arc;
use std::time::Duration;

/// Pause before a broken watch is created again.
const REWATCH_PAUSE: Duration = Duration::from_millis(200);

/// Follow every change under `prefix` for as long as the runtime runs,
/// creating the watch again whenever it breaks.
pub async fn follow(mut client: WatchClient, prefix: Vec<u8>, mirror: Arc<Mirror>) {
    loop {
        let opts = WatchOptions::new().with_prefix();
        match client.watch(prefix.clone(), Some(opts)).await {
            Ok(mut stream) => loop {
                let next = if mirror.holding() {
                    match tokio::time::timeout(HOLD, stream.message()).await {
                        Ok(next) => next,
                        Err(_) => {
                            mirror.hand_on(false);
                            continue;
                        }
                    }
                } else {
                    stream.message().await
                };
                let resp = match next {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        log::debug!("etcd watch ended; creating it again");
                        break;
                    }
                    Err(e) => {
                        log::debug!("etcd watch failed: {e}; creating it again");
                        break;
                    }
                };
                let through = resp.header().map_or(0, |h| h.revision());
                if resp.canceled() {
                    log::debug!("etcd watch canceled: {}", resp.cancel_reason());
                    break;
                }
                if resp.created() {
                    mirror.started(through);
                    continue;
                }
                // A delete event's key-value has version 0 (etcd sends
                // only the key and the deleting revision).
                let changes = resp.events().iter().filter_map(|e| {
                    let kv = e.kv()?;
                    let key = kv.key().strip_prefix(&prefix[..])?;
                    let value = (kv.version() > 0).then(|| kv.value());
                    let rev = kv.mod_revision();
                    Some(Change { key, value, rev })
                });
                mirror.apply(changes, through);
                mirror.hand_on(false);
            },
            Err(e) => log::debug!("cannot create the etcd watch: {e}"),
        }
        mirror.stopped();
        tokio::time::sleep(REWATCH_PAUSE).await;
    }
}

//! Deferred reloads: changes made without `force_reload` share one reload
//! `reload_delay` after the first of them, tracked under a Reload-ID as
//! `GET /v2/services/haproxy/reloads[/{id}]` shows it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Snapshot;

/// How many finished reloads are remembered.
const KEEP: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct Reload {
    pub id: String,
    /// `in_progress`, `succeeded` or `failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload_timestamp: Option<u64>,
}

/// The reload not yet run and the configuration to restore if it fails.
struct Pending {
    id: String,
    before: Arc<Snapshot>,
}

#[derive(Default)]
struct Inner {
    counter: u64,
    records: VecDeque<Reload>,
    pending: Option<Pending>,
}

#[derive(Default)]
pub struct Reloads {
    inner: Mutex<Inner>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD` of a Unix time (UTC), for HAProxy-style reload ids.
pub fn date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

impl Reloads {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pending reload's id, or a new one (`true`: the caller schedules it).
    /// `before` is what a failed reload restores.
    pub fn join_or_start(&self, before: Arc<Snapshot>) -> (String, bool) {
        let mut inner = self.lock();
        if let Some(p) = &inner.pending {
            return (p.id.clone(), false);
        }
        inner.counter += 1;
        let id = format!("{}-{}", date(now()), inner.counter);
        inner.records.push_back(Reload {
            id: id.clone(),
            status: "in_progress",
            response: None,
            reload_timestamp: None,
        });
        while inner.records.len() > KEEP {
            inner.records.pop_front();
        }
        inner.pending = Some(Pending {
            id: id.clone(),
            before,
        });
        (id, true)
    }

    /// Whether a deferred reload is waiting to run.
    pub fn has_pending(&self) -> bool {
        self.lock().pending.is_some()
    }

    /// Takes the pending reload if it is still `id`.
    pub fn take_pending(&self, id: &str) -> Option<Arc<Snapshot>> {
        let mut inner = self.lock();
        if inner.pending.as_ref().is_some_and(|p| p.id == id) {
            return inner.pending.take().map(|p| p.before);
        }
        None
    }

    /// Takes whatever reload is pending (a forced reload just covered it).
    pub fn take_any_pending(&self) -> Option<String> {
        self.lock().pending.take().map(|p| p.id)
    }

    pub fn finish(&self, id: &str, result: Result<(), String>) {
        let mut inner = self.lock();
        if let Some(r) = inner.records.iter_mut().find(|r| r.id == id) {
            r.reload_timestamp = Some(now());
            match result {
                Ok(()) => {
                    r.status = "succeeded";
                    r.response = None;
                }
                Err(e) => {
                    r.status = "failed";
                    r.response = Some(e);
                }
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Reload> {
        self.lock().records.iter().find(|r| r.id == id).cloned()
    }

    pub fn list(&self) -> Vec<Reload> {
        self.lock().records.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_735_689_599), "2024-12-31");
    }

    #[test]
    fn one_pending_reload_is_shared() {
        let r = Reloads::default();
        let snap = Arc::new(Snapshot {
            version: 1,
            text: String::new(),
            config: lb::config::Config::default(),
        });
        let (a, started) = r.join_or_start(Arc::clone(&snap));
        assert!(started);
        let (b, started) = r.join_or_start(Arc::clone(&snap));
        assert!(!started && a == b);
        assert_eq!(r.get(&a).map(|x| x.status), Some("in_progress"));
        assert!(r.take_pending("other").is_none());
        assert!(r.take_pending(&a).is_some());
        r.finish(&a, Err("boom".into()));
        let rec = r.get(&a).unwrap();
        assert_eq!(
            (rec.status, rec.response.as_deref()),
            ("failed", Some("boom"))
        );
        let (c, started) = r.join_or_start(snap);
        assert!(started && c != a);
        assert_eq!(r.list().len(), 2);
    }
}

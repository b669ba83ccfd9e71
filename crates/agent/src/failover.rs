//! The walk over `<client><server>` entries, as Wazuh's agentd does it: each server gets
//! `max_retries` attempts `retry_interval` apart, then the next server is tried, wrapping
//! around the list. A session that was established and ended starts over on the same server.
//! Pure: the caller sleeps for the returned delay.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    pub max_retries: u32,
    pub retry_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Walk {
    servers: Vec<Attempts>,
    current: usize,
    failures: u32,
}

impl Walk {
    /// `servers` must not be empty (the configuration guarantees one).
    pub fn new(servers: Vec<Attempts>) -> Walk {
        Walk {
            servers,
            current: 0,
            failures: 0,
        }
    }

    /// Index of the server to try now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// An attempt on the current server failed: how long to wait before the next attempt,
    /// which goes to the next server once this one had its `max_retries`.
    pub fn failed(&mut self) -> Duration {
        let Some(s) = self.servers.get(self.current).copied() else {
            return Duration::from_secs(1);
        };
        self.failures += 1;
        if self.failures < s.max_retries.max(1) {
            return s.retry_interval;
        }
        self.failures = 0;
        self.current = (self.current + 1) % self.servers.len();
        if self.current != 0 {
            // The next server is worth trying at once.
            Duration::ZERO
        } else {
            // A whole round failed: wait before starting over.
            s.retry_interval
        }
    }

    /// A session was established: its end restarts the count on the same server.
    pub fn connected(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u32, secs: u64) -> Attempts {
        Attempts {
            max_retries: n,
            retry_interval: Duration::from_secs(secs),
        }
    }

    #[test]
    fn retries_then_cycles_and_wraps() {
        let mut w = Walk::new(vec![a(3, 10), a(2, 5)]);
        assert_eq!(w.current(), 0);
        assert_eq!(w.failed(), Duration::from_secs(10));
        assert_eq!(w.failed(), Duration::from_secs(10));
        assert_eq!(w.current(), 0);
        assert_eq!(w.failed(), Duration::ZERO);
        assert_eq!(w.current(), 1);
        assert_eq!(w.failed(), Duration::from_secs(5));
        assert_eq!(
            w.failed(),
            Duration::from_secs(5),
            "a whole round failed: wait"
        );
        assert_eq!(w.current(), 0, "wraps to the first server");
    }

    #[test]
    fn single_server_keeps_its_interval() {
        let mut w = Walk::new(vec![a(1, 7)]);
        assert_eq!(w.failed(), Duration::from_secs(7));
        assert_eq!(w.current(), 0);
    }

    #[test]
    fn one_try_each_never_spins() {
        let mut w = Walk::new(vec![a(1, 3), a(1, 3)]);
        assert_eq!(w.failed(), Duration::ZERO, "on to the second server");
        assert_eq!(w.failed(), Duration::from_secs(3), "round over: wait");
        assert_eq!(w.current(), 0);
    }

    #[test]
    fn a_session_resets_the_count() {
        let mut w = Walk::new(vec![a(2, 1), a(2, 1)]);
        w.failed();
        w.connected();
        w.failed();
        assert_eq!(w.current(), 0, "one failure since the session, not two");
    }
}

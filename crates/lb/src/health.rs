//! HAProxy's health-check state machine, as pure logic.
//!
//! A server's `health` counter runs from 0 to `rise + fall - 1`; the server is up while
//! `health >= rise`. A success climbs one step (coming up when it reaches `rise`, then
//! jumping to the top so that `fall` failures are needed to go down); a failure while up
//! steps down until it would drop below `rise`, at which point the server goes down and
//! the counter resets to 0, so `rise` successes are needed to come back.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckParams {
    pub rise: u32,
    pub fall: u32,
    pub inter: Duration,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
}

/// What a check attempt found, with HAProxy's wording for logs and `show stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Layer 4 connection established.
    L4Ok,
    /// Connection refused, reset, unreachable…: `info` carries the OS error text.
    L4Con(String),
    /// No answer within the check timeout.
    L4Tout,
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        matches!(self, CheckResult::L4Ok)
    }

    /// `check_status` column of `show stat`.
    pub fn status_code(&self) -> &'static str {
        match self {
            CheckResult::L4Ok => "L4OK",
            CheckResult::L4Con(_) => "L4CON",
            CheckResult::L4Tout => "L4TOUT",
        }
    }

    /// The `reason: …` part of a state-change log line.
    pub fn reason(&self) -> String {
        match self {
            CheckResult::L4Ok => "Layer4 check passed".to_string(),
            CheckResult::L4Con(info) if info.is_empty() => "Layer4 connection problem".to_string(),
            CheckResult::L4Con(info) => {
                format!("Layer4 connection problem, info: \"{info}\"")
            }
            CheckResult::L4Tout => "Layer4 timeout".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    WentUp,
    WentDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    params: CheckParams,
    health: u32,
}

impl Health {
    /// Servers start up, one failure away from down, as HAProxy does.
    pub fn new(params: CheckParams) -> Self {
        let params = CheckParams {
            rise: params.rise.max(1),
            fall: params.fall.max(1),
            ..params
        };
        Health {
            params,
            health: params.rise,
        }
    }

    /// Starts down, needing `rise` successes (a server set down at runtime, or `disabled`).
    pub fn new_down(params: CheckParams) -> Self {
        Health {
            health: 0,
            ..Self::new(params)
        }
    }

    pub fn is_up(&self) -> bool {
        self.health >= self.params.rise
    }

    fn top(&self) -> u32 {
        self.params.rise + self.params.fall - 1
    }

    pub fn params(&self) -> CheckParams {
        self.params
    }

    /// Counter shown by `show servers state` (srv_check_health).
    pub fn counter(&self) -> u32 {
        self.health
    }

    pub fn record(&mut self, passed: bool) -> Transition {
        if passed {
            if self.health >= self.top() {
                return Transition::None;
            }
            self.health += 1;
            if self.health == self.params.rise {
                self.health = self.top();
                return Transition::WentUp;
            }
            Transition::None
        } else if self.health > self.params.rise {
            self.health -= 1;
            Transition::None
        } else if self.health >= self.params.rise {
            self.health = 0;
            Transition::WentDown
        } else {
            self.health = 0;
            Transition::None
        }
    }

    /// Forces the state (runtime `set server … health up|down`).
    pub fn force(&mut self, up: bool) -> Transition {
        let was = self.is_up();
        self.health = if up { self.top() } else { 0 };
        match (was, up) {
            (false, true) => Transition::WentUp,
            (true, false) => Transition::WentDown,
            _ => Transition::None,
        }
    }

    /// Delay before the next check: `inter` when steadily up, `downinter` when fully
    /// down, `fastinter` while transitioning; each falls back to `inter`.
    pub fn next_interval(&self) -> Duration {
        let p = &self.params;
        if self.health == self.top() {
            p.inter
        } else if self.health == 0 {
            p.downinter.unwrap_or(p.inter)
        } else {
            p.fastinter.unwrap_or(p.inter)
        }
    }

    /// `check_status`-style text: "UP", "DOWN", or "UP 1/3" / "DOWN 1/2" while moving.
    pub fn status_text(&self) -> String {
        let p = &self.params;
        if self.is_up() {
            if self.health == self.top() {
                "UP".to_string()
            } else {
                format!("UP {}/{}", self.health - p.rise + 1, p.fall)
            }
        } else if self.health == 0 {
            "DOWN".to_string()
        } else {
            format!("DOWN {}/{}", self.health, p.rise)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(rise: u32, fall: u32) -> CheckParams {
        CheckParams {
            rise,
            fall,
            inter: Duration::from_millis(2000),
            fastinter: Some(Duration::from_millis(500)),
            downinter: Some(Duration::from_millis(5000)),
        }
    }

    #[test]
    fn starts_up_and_first_failure_takes_it_down() {
        let mut h = Health::new(params(2, 3));
        assert!(h.is_up());
        assert_eq!(h.record(false), Transition::WentDown);
        assert!(!h.is_up());
    }

    #[test]
    fn needs_rise_successes_then_fall_failures() {
        let mut h = Health::new_down(params(2, 3));
        assert_eq!(h.record(true), Transition::None);
        assert!(!h.is_up());
        assert_eq!(h.record(true), Transition::WentUp);
        assert!(h.is_up());
        assert_eq!(h.record(false), Transition::None);
        assert_eq!(h.record(false), Transition::None);
        assert!(h.is_up());
        assert_eq!(h.record(false), Transition::WentDown);
        assert_eq!(h.counter(), 0);
    }

    #[test]
    fn success_in_between_restores_full_health() {
        let mut h = Health::new_down(params(2, 3));
        h.record(true);
        h.record(true);
        h.record(false);
        h.record(false);
        assert_eq!(h.status_text(), "UP 1/3");
        h.record(true);
        h.record(true);
        assert_eq!(h.status_text(), "UP");
        h.record(false);
        h.record(false);
        assert!(
            h.is_up(),
            "two failures after recovery must not take it down"
        );
    }

    #[test]
    fn failure_while_rising_resets() {
        let mut h = Health::new_down(params(3, 2));
        h.record(true);
        h.record(true);
        assert_eq!(h.status_text(), "DOWN 2/3");
        assert_eq!(h.record(false), Transition::None);
        assert_eq!(h.counter(), 0);
    }

    #[test]
    fn intervals_follow_state() {
        let mut h = Health::new_down(params(2, 3));
        assert_eq!(h.next_interval(), Duration::from_millis(5000));
        h.record(true);
        assert_eq!(h.next_interval(), Duration::from_millis(500));
        h.record(true);
        assert_eq!(h.next_interval(), Duration::from_millis(2000));
        h.record(false);
        assert_eq!(h.next_interval(), Duration::from_millis(500));
        let plain = Health::new(CheckParams {
            fastinter: None,
            downinter: None,
            ..params(2, 3)
        });
        assert_eq!(plain.next_interval(), Duration::from_millis(2000));
    }

    #[test]
    fn rise_one_fall_one() {
        let mut h = Health::new(params(1, 1));
        assert_eq!(h.record(false), Transition::WentDown);
        assert_eq!(h.record(true), Transition::WentUp);
        assert_eq!(h.record(true), Transition::None);
    }

    #[test]
    fn force_reports_transitions() {
        let mut h = Health::new(params(2, 3));
        assert_eq!(h.force(false), Transition::WentDown);
        assert_eq!(h.force(false), Transition::None);
        assert_eq!(h.force(true), Transition::WentUp);
    }

    #[test]
    fn reasons_match_haproxy_wording() {
        assert_eq!(
            CheckResult::L4Con("Connection refused".into()).reason(),
            "Layer4 connection problem, info: \"Connection refused\""
        );
        assert_eq!(CheckResult::L4Tout.reason(), "Layer4 timeout");
        assert_eq!(CheckResult::L4Ok.status_code(), "L4OK");
    }
}

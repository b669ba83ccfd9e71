//! The VRRP state machine (RFC 5798/9568 section 6.4, with keepalived's FAULT state,
//! `nopreempt`, `preempt_delay` and tracking weights). Pure: no I/O, no clock; the shell
//! passes `now_ms`, calls [`Machine::on_timer`] at [`Machine::next_deadline`] and carries out
//! the returned [`Action`]s in order.
//!
//! Timer math is done in whole milliseconds, rounding down: an interval of `cs` centiseconds
//! is `cs × 10` ms, `Skew_Time = ⌊(256 − priority) × interval_ms / 256⌋` and
//! `Master_Down_Interval = 3 × interval_ms + Skew_Time` (1 s at priority 100: 3609 ms).

use std::net::IpAddr;

use crate::packet::Version;

/// Where a machine goes at [`Machine::start`]. As in keepalived, `Master` still starts as
/// backup (and wins after the master down interval if nobody is better) unless the priority
/// is 255, the address owner, which is master at once whatever this says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initial {
    Master,
    Backup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Init,
    Backup,
    Master,
    Fault,
    Stopped,
}

/// What one virtual router instance is configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub vrid: u8,
    /// Configured priority (1..=255); tracking adjusts it, see [`Machine::effective_priority`].
    pub priority: u8,
    /// Our Advertisement_Interval in centiseconds (v2: a whole number of seconds × 100).
    pub advert_int_cs: u16,
    pub version: Version,
    pub preempt: bool,
    /// After startup (or a fault clearing), a backup does not preempt for this long.
    pub preempt_delay_ms: u64,
    pub initial: Initial,
    /// Our primary address: breaks ties between equal priorities (higher wins).
    pub own_addr: IpAddr,
}

/// What the shell must do, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SendAdvert {
        priority: u8,
    },
    /// Exactly one per state change; `reason` is meant for a log line.
    Transition {
        to: State,
        reason: String,
    },
    AddVips,
    RemoveVips,
    /// Once on becoming master; the shell repeats it per its garp settings.
    SendGarp,
    Notify(State),
}

/// `Skew_Time` in ms for a local `priority` and a master advertisement interval in cs.
pub fn skew_ms(priority: u8, interval_cs: u16) -> u64 {
    (256 - u64::from(priority)) * interval_ms(interval_cs) / 256
}

/// `Master_Down_Interval` in ms.
pub fn master_down_ms(priority: u8, interval_cs: u16) -> u64 {
    3 * interval_ms(interval_cs) + skew_ms(priority, interval_cs)
}

fn interval_ms(cs: u16) -> u64 {
    u64::from(cs) * 10
}

#[derive(Clone, Debug)]
pub struct Machine {
    p: Params,
    state: State,
    adjust: i32,
    fault: bool,
    /// Master_Adver_Interval: learned from the master in v3, ours in v2.
    master_int_cs: u16,
    /// Master: next advertisement. Backup: Master_Down_Timer.
    deadline: Option<u64>,
    master: Option<IpAddr>,
    /// A backup does not preempt before this instant (preempt_delay).
    preempt_after: u64,
    /// Why the down timer will fire, when it is not plain silence from the master.
    down_reason: Option<String>,
}

impl Machine {
    pub fn new(params: Params) -> Machine {
        Machine {
            master_int_cs: params.advert_int_cs,
            p: params,
            state: State::Init,
            adjust: 0,
            fault: false,
            deadline: None,
            master: None,
            preempt_after: 0,
            down_reason: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Who is master as far as we know: us, the sender of the last accepted advertisement,
    /// or nobody (after a priority 0, while in fault, before start).
    pub fn master(&self) -> Option<IpAddr> {
        self.master
    }

    /// Configured priority plus the tracking weights, clamped to 1..=254; 255 (the address
    /// owner) stays 255 only while no weight applies.
    pub fn effective_priority(&self) -> u8 {
        if self.p.priority == 255 && self.adjust == 0 {
            return 255;
        }
        let p = (i32::from(self.p.priority) + self.adjust).clamp(1, 254);
        p as u8
    }

    pub fn next_deadline(&self) -> Option<u64> {
        match self.state {
            State::Master | State::Backup => self.deadline,
            _ => None,
        }
    }

    pub fn start(&mut self, now_ms: u64) -> Vec<Action> {
        if self.state != State::Init {
            return Vec::new();
        }
        if self.fault {
            return self.enter_fault("fault at startup".into());
        }
        self.preempt_after = now_ms.saturating_add(self.p.preempt_delay_ms);
        if self.effective_priority() == 255 {
            return self.become_master(now_ms, "priority 255: address owner".into());
        }
        let reason = match self.p.initial {
            Initial::Master => "startup (state MASTER waits for the master down interval)",
            Initial::Backup => "startup",
        };
        self.become_backup(now_ms, reason.into())
    }

    pub fn on_advert(
        &mut self,
        now_ms: u64,
        from: IpAddr,
        priority: u8,
        interval_cs: u16,
    ) -> Vec<Action> {
        // v2 requires the sender's interval to equal ours (RFC 3768 7.1); v3 learns it.
        if self.p.version == Version::V2 && interval_cs != self.p.advert_int_cs {
            return Vec::new();
        }
        if from == self.p.own_addr {
            return Vec::new();
        }
        let ours = self.effective_priority();
        match self.state {
            State::Backup => {
                if priority == 0 {
                    self.master = None;
                    self.deadline = Some(now_ms + skew_ms(ours, self.master_int_cs));
                    self.down_reason = Some(format!("received priority 0 from {from}"));
                } else if !self.p.preempt || priority >= ours || now_ms < self.preempt_after {
                    if self.p.version == Version::V3 && interval_cs != 0 {
                        self.master_int_cs = interval_cs;
                    }
                    self.master = Some(from);
                    self.deadline = Some(now_ms + master_down_ms(ours, self.master_int_cs));
                    self.down_reason = None;
                } else {
                    // Ignored so that the down timer fires and we take over.
                    self.master = Some(from);
                    self.down_reason =
                        Some(format!("preempting lower priority {priority} from {from}"));
                }
                Vec::new()
            }
            State::Master => {
                if priority == 0 {
                    // Someone left: assert ourselves at once.
                    self.deadline = Some(now_ms + interval_ms(self.p.advert_int_cs));
                    vec![Action::SendAdvert { priority: ours }]
                } else if priority > ours || (priority == ours && from > self.p.own_addr) {
                    let reason = if priority > ours {
                        format!("higher priority {priority} from {from}")
                    } else {
                        format!("equal priority {priority} from higher address {from}")
                    };
                    if self.p.version == Version::V3 && interval_cs != 0 {
                        self.master_int_cs = interval_cs;
                    }
                    self.master = Some(from);
                    self.become_backup(now_ms, reason)
                } else {
                    Vec::new()
                }
            }
            State::Init | State::Fault | State::Stopped => Vec::new(),
        }
    }

    pub fn on_timer(&mut self, now_ms: u64) -> Vec<Action> {
        let Some(due) = self.next_deadline() else {
            return Vec::new();
        };
        if now_ms < due {
            return Vec::new();
        }
        match self.state {
            State::Master => {
                let int = interval_ms(self.p.advert_int_cs);
                // Keep the cadence; if the shell was late, restart it from now.
                let next = due + int;
                self.deadline = Some(if next > now_ms { next } else { now_ms + int });
                vec![Action::SendAdvert {
                    priority: self.effective_priority(),
                }]
            }
            State::Backup => {
                let reason = self
                    .down_reason
                    .take()
                    .unwrap_or_else(|| "master down interval expired".into());
                self.become_master(now_ms, reason)
            }
            _ => Vec::new(),
        }
    }

    /// Sets the sum of the tracking weights that currently apply. A master advertises its new
    /// priority at once so that a better backup can preempt without waiting an interval.
    pub fn set_priority_adjust(&mut self, now_ms: u64, delta: i32) -> Vec<Action> {
        let before = self.effective_priority();
        self.adjust = delta;
        let after = self.effective_priority();
        if before == after || self.state != State::Master {
            return Vec::new();
        }
        self.deadline = Some(now_ms + interval_ms(self.p.advert_int_cs));
        vec![Action::SendAdvert { priority: after }]
    }

    pub fn set_fault(&mut self, now_ms: u64, fault: bool) -> Vec<Action> {
        if self.fault == fault {
            return Vec::new();
        }
        self.fault = fault;
        match (fault, self.state) {
            (true, State::Master | State::Backup) => self.enter_fault("fault".into()),
            (false, State::Fault) => {
                self.preempt_after = now_ms.saturating_add(self.p.preempt_delay_ms);
                self.master_int_cs = self.p.advert_int_cs;
                if self.effective_priority() == 255 {
                    self.become_master(now_ms, "fault cleared, priority 255".into())
                } else {
                    self.become_backup(now_ms, "fault cleared".into())
                }
            }
            // Before start the flag is only remembered; after stop it no longer matters.
            _ => Vec::new(),
        }
    }

    pub fn stop(&mut self, _now_ms: u64) -> Vec<Action> {
        if self.state == State::Stopped {
            return Vec::new();
        }
        let mut out = self.leave_master();
        self.state = State::Stopped;
        self.deadline = None;
        self.master = None;
        out.push(Action::Transition {
            to: State::Stopped,
            reason: "stopped".into(),
        });
        out.push(Action::Notify(State::Stopped));
        out
    }

    /// Priority 0 and VIP release when we are master; nothing otherwise.
    fn leave_master(&mut self) -> Vec<Action> {
        if self.state == State::Master {
            vec![Action::SendAdvert { priority: 0 }, Action::RemoveVips]
        } else {
            Vec::new()
        }
    }

    fn enter_fault(&mut self, reason: String) -> Vec<Action> {
        let mut out = self.leave_master();
        self.state = State::Fault;
        self.deadline = None;
        self.master = None;
        self.down_reason = None;
        out.push(Action::Transition {
            to: State::Fault,
            reason,
        });
        out.push(Action::Notify(State::Fault));
        out
    }

    fn become_master(&mut self, now_ms: u64, reason: String) -> Vec<Action> {
        self.state = State::Master;
        self.master = Some(self.p.own_addr);
        self.down_reason = None;
        self.deadline = Some(now_ms + interval_ms(self.p.advert_int_cs));
        vec![
            Action::Transition {
                to: State::Master,
                reason,
            },
            Action::AddVips,
            Action::SendAdvert {
                priority: self.effective_priority(),
            },
            Action::SendGarp,
            Action::Notify(State::Master),
        ]
    }

    fn become_backup(&mut self, now_ms: u64, reason: String) -> Vec<Action> {
        // A master yielding to a better one releases the VIPs but sends no priority 0.
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Action::RemoveVips);
        }
        self.state = State::Backup;
        self.down_reason = None;
        let down = master_down_ms(self.effective_priority(), self.master_int_cs);
        self.deadline = Some(now_ms + down);
        out.push(Action::Transition {
            to: State::Backup,
            reason,
        });
        out.push(Action::Notify(State::Backup));
        out
    }
}

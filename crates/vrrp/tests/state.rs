//! State machine tests on a fake clock: machines wired through an in-test network that delivers
//! every SendAdvert to the other running machines at the same instant.
//!
//! Timer rounding (see `vrrp::state`): whole ms, rounded down. At 1 s and priority 100,
//! Skew_Time = ⌊156 × 1000 / 256⌋ = 609 ms and Master_Down_Interval = 3609 ms.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use vrrp::packet::Version;
use vrrp::state::{master_down_ms, skew_ms, Action, Initial, Machine, Params, State};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn params(last: u8, priority: u8) -> Params {
    Params {
        vrid: 51,
        priority,
        advert_int_cs: 100,
        version: Version::V3,
        preempt: true,
        preempt_delay_ms: 0,
        initial: Initial::Backup,
        own_addr: ip(last),
    }
}

struct Node {
    m: Machine,
    addr: IpAddr,
    int_cs: u16,
    up: bool,
}

#[derive(Debug, Clone)]
struct Ev {
    t: u64,
    node: usize,
    action: Action,
}

struct Net {
    now: u64,
    nodes: Vec<Node>,
    connected: bool,
    log: Vec<Ev>,
}

impl Net {
    fn new(ps: Vec<Params>) -> Net {
        Net {
            now: 0,
            nodes: ps.into_iter().map(Net::node).collect(),
            connected: true,
            log: Vec::new(),
        }
    }

    fn node(p: Params) -> Node {
        Node {
            addr: p.own_addr,
            int_cs: p.advert_int_cs,
            m: Machine::new(p),
            up: false,
        }
    }

    fn start(&mut self, i: usize) {
        self.nodes[i].up = true;
        let acts = self.nodes[i].m.start(self.now);
        self.dispatch(i, acts);
    }

    /// A fresh process for node `i` (same role, possibly new parameters), started now.
    fn restart(&mut self, i: usize, p: Params) {
        self.nodes[i] = Net::node(p);
        self.start(i);
    }

    /// The process dies without a word: no priority 0.
    fn crash(&mut self, i: usize) {
        self.nodes[i].up = false;
    }

    fn stop(&mut self, i: usize) {
        let acts = self.nodes[i].m.stop(self.now);
        self.dispatch(i, acts);
        self.nodes[i].up = false;
    }

    fn apply(&mut self, i: usize, f: impl FnOnce(&mut Machine, u64) -> Vec<Action>) {
        let acts = f(&mut self.nodes[i].m, self.now);
        self.dispatch(i, acts);
    }

    fn dispatch(&mut self, from: usize, acts: Vec<Action>) {
        let mut q: VecDeque<(usize, Action)> = acts.into_iter().map(|a| (from, a)).collect();
        while let Some((src, a)) = q.pop_front() {
            self.log.push(Ev {
                t: self.now,
                node: src,
                action: a.clone(),
            });
            let Action::SendAdvert { priority } = a else {
                continue;
            };
            if !self.connected {
                continue;
            }
            let (addr, int_cs) = (self.nodes[src].addr, self.nodes[src].int_cs);
            for j in 0..self.nodes.len() {
                if j != src && self.nodes[j].up {
                    let r = self.nodes[j].m.on_advert(self.now, addr, priority, int_cs);
                    q.extend(r.into_iter().map(|x| (j, x)));
                }
            }
        }
    }

    fn run_until(&mut self, t: u64) {
        for _ in 0..100_000 {
            let next = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.up)
                .filter_map(|(i, n)| n.m.next_deadline().map(|d| (d, i)))
                .min();
            match next {
                Some((d, i)) if d <= t => {
                    assert!(d >= self.now, "deadline in the past");
                    self.now = d;
                    let acts = self.nodes[i].m.on_timer(d);
                    assert!(!acts.is_empty(), "a reached deadline fires something");
                    self.dispatch(i, acts);
                }
                _ => {
                    self.now = t;
                    return;
                }
            }
        }
        panic!("simulation did not settle");
    }

    fn transitions(&self, node: usize) -> Vec<(u64, State, String)> {
        self.log
            .iter()
            .filter(|e| e.node == node)
            .filter_map(|e| match &e.action {
                Action::Transition { to, reason } => Some((e.t, *to, reason.clone())),
                _ => None,
            })
            .collect()
    }

    fn became_master_at(&self, node: usize) -> Vec<u64> {
        self.transitions(node)
            .into_iter()
            .filter(|(_, s, _)| *s == State::Master)
            .map(|(t, _, _)| t)
            .collect()
    }

    fn adverts(&self, node: usize) -> Vec<(u64, u8)> {
        self.log
            .iter()
            .filter(|e| e.node == node)
            .filter_map(|e| match e.action {
                Action::SendAdvert { priority } => Some((e.t, priority)),
                _ => None,
            })
            .collect()
    }

    fn state(&self, i: usize) -> State {
        self.nodes[i].m.state()
    }
}

const A: usize = 0;
const B: usize = 1;

/// A (10.0.0.1, priority 100) and B (10.0.0.2, priority 200) started at 0: B is master at its
/// own master down interval, 3000 + ⌊56 × 1000 / 256⌋ = 3218 ms.
fn a100_b200() -> Net {
    let mut net = Net::new(vec![params(1, 100), params(2, 200)]);
    net.start(A);
    net.start(B);
    net.run_until(5_000);
    assert_eq!(net.became_master_at(B), vec![3218]);
    net
}

#[test]
fn timer_math() {
    assert_eq!(skew_ms(100, 100), 609);
    assert_eq!(master_down_ms(100, 100), 3609);
    assert_eq!(master_down_ms(200, 100), 3218);
    assert_eq!(master_down_ms(255, 100), 3003);
    assert_eq!(master_down_ms(1, 100), 3996);
    assert_eq!(master_down_ms(100, 200), 7218);
    assert_eq!(skew_ms(100, 4095), 24_953);
}

#[test]
fn higher_priority_wins_election_from_both_backup() {
    let mut net = Net::new(vec![params(1, 100), params(2, 150)]);
    net.start(A);
    net.start(B);
    assert_eq!(net.state(A), State::Backup);
    assert_eq!(net.state(B), State::Backup);
    net.run_until(20_000);
    // 3000 + ⌊106 × 1000 / 256⌋ = 3414 < A's 3609.
    assert_eq!(net.became_master_at(B), vec![3414]);
    assert!(net.became_master_at(A).is_empty());
    assert_eq!(net.state(B), State::Master);
    assert_eq!(net.state(A), State::Backup);
    assert_eq!(net.nodes[A].m.master(), Some(ip(2)));
    assert_eq!(net.nodes[B].m.master(), Some(ip(2)));
    let (_, _, reason) = &net.transitions(B)[1];
    assert_eq!(reason, "master down interval expired");
    // Master's actions on taking over, in order.
    let b: Vec<Action> = net
        .log
        .iter()
        .filter(|e| e.node == B && e.t == 3414)
        .map(|e| e.action.clone())
        .collect();
    assert_eq!(
        b,
        vec![
            Action::Transition {
                to: State::Master,
                reason: "master down interval expired".into()
            },
            Action::AddVips,
            Action::SendAdvert { priority: 150 },
            Action::SendGarp,
            Action::Notify(State::Master),
        ]
    );
}

#[test]
fn master_killed_backup_takes_over_at_master_down_interval() {
    let mut net = a100_b200();
    net.run_until(10_000);
    let last = net.adverts(B).last().map(|(t, _)| *t);
    assert_eq!(last, Some(9218));
    net.crash(B);
    net.run_until(30_000);
    // Exactly Master_Down_Interval (3609 ms at priority 100, 1 s) after the last advert.
    assert_eq!(net.became_master_at(A), vec![9218 + 3609]);
    let (_, _, reason) = net.transitions(A).last().cloned().unwrap();
    assert_eq!(reason, "master down interval expired");
    assert_eq!(net.nodes[A].m.master(), Some(ip(1)));
}

#[test]
fn clean_stop_backup_takes_over_after_skew_time() {
    let mut net = a100_b200();
    net.run_until(10_000);
    net.stop(B);
    assert_eq!(net.state(B), State::Stopped);
    let b_stop: Vec<Action> = net
        .log
        .iter()
        .filter(|e| e.node == B && e.t == 10_000)
        .map(|e| e.action.clone())
        .collect();
    assert_eq!(
        b_stop,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            Action::Transition {
                to: State::Stopped,
                reason: "stopped".into()
            },
            Action::Notify(State::Stopped),
        ]
    );
    assert_eq!(net.nodes[A].m.master(), None);
    assert_eq!(net.nodes[A].m.next_deadline(), Some(10_000 + 609));
    net.run_until(20_000);
    assert_eq!(net.became_master_at(A), vec![10_609]);
    let (_, _, reason) = net.transitions(A).last().cloned().unwrap();
    assert_eq!(reason, "received priority 0 from 10.0.0.2");
}

#[test]
fn primary_returning_preempts() {
    let mut net = a100_b200();
    net.crash(B);
    net.run_until(20_000);
    assert_eq!(net.state(A), State::Master);
    net.restart(B, params(2, 200));
    assert_eq!(net.state(B), State::Backup);
    net.run_until(40_000);
    // B ignores A's lower-priority adverts so its down timer, set at restart, fires.
    assert_eq!(net.became_master_at(B), vec![3218, 20_000 + 3218]);
    let (_, _, reason) = net.transitions(B).last().cloned().unwrap();
    assert_eq!(reason, "preempting lower priority 100 from 10.0.0.1");
    let (t, to, reason) = net.transitions(A).last().cloned().unwrap();
    assert_eq!(
        (t, to, reason.as_str()),
        (23_218, State::Backup, "higher priority 200 from 10.0.0.2")
    );
    assert!(net
        .log
        .iter()
        .any(|e| e.node == A && e.t == 23_218 && e.action == Action::RemoveVips));
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let mut net = a100_b200();
    net.crash(B);
    net.run_until(20_000);
    net.restart(
        B,
        Params {
            preempt: false,
            ..params(2, 200)
        },
    );
    net.run_until(80_000);
    assert_eq!(net.state(A), State::Master);
    assert_eq!(net.state(B), State::Backup);
    assert_eq!(net.nodes[B].m.master(), Some(ip(1)));
    assert_eq!(net.became_master_at(B), vec![3218]);
}

#[test]
fn preempt_delay_postpones_preemption() {
    let mut net = a100_b200();
    net.crash(B);
    net.run_until(20_000);
    let a_master = net.became_master_at(A)[0];
    assert_eq!(a_master, 4218 + 3609);
    net.restart(
        B,
        Params {
            preempt_delay_ms: 10_000,
            ..params(2, 200)
        },
    );
    net.run_until(80_000);
    // A advertises at 7827 + k s; B accepts them until 30000 (last at 29827), ignores the
    // ones after, so its down timer fires 3218 ms after 29827.
    assert_eq!(net.became_master_at(B), vec![3218, 29_827 + 3218]);
    assert_eq!(net.state(A), State::Backup);
}

#[test]
fn equal_priority_higher_address_wins() {
    let mut net = Net::new(vec![params(1, 100), params(2, 100)]);
    // Partitioned: both become master.
    net.connected = false;
    net.start(A);
    net.start(B);
    net.run_until(5_000);
    assert_eq!(net.state(A), State::Master);
    assert_eq!(net.state(B), State::Master);
    net.connected = true;
    net.run_until(10_000);
    assert_eq!(net.state(A), State::Backup);
    assert_eq!(net.state(B), State::Master);
    let (_, _, reason) = net.transitions(A).last().cloned().unwrap();
    assert_eq!(reason, "equal priority 100 from higher address 10.0.0.2");
    // B saw A's equal-priority advert from a lower address and stayed.
    assert_eq!(net.became_master_at(B), vec![3609]);
}

#[test]
fn equal_priority_backup_does_not_preempt() {
    let mut net = Net::new(vec![params(1, 100), params(2, 100)]);
    net.start(A);
    net.run_until(5_000);
    net.start(B);
    net.run_until(30_000);
    assert_eq!(net.state(A), State::Master);
    assert_eq!(net.state(B), State::Backup);
}

#[test]
fn owner_255_is_master_at_start() {
    let mut owner = Machine::new(params(1, 255));
    assert_eq!(owner.state(), State::Init);
    assert_eq!(owner.effective_priority(), 255);
    let acts = owner.start(0);
    assert_eq!(
        acts,
        vec![
            Action::Transition {
                to: State::Master,
                reason: "priority 255: address owner".into()
            },
            Action::AddVips,
            Action::SendAdvert { priority: 255 },
            Action::SendGarp,
            Action::Notify(State::Master),
        ]
    );
    assert_eq!(owner.next_deadline(), Some(1000));
    // state MASTER below 255 still starts as backup.
    let mut m = Machine::new(Params {
        initial: Initial::Master,
        ..params(2, 200)
    });
    let acts = m.start(0);
    assert_eq!(m.state(), State::Backup);
    assert!(matches!(
        acts[0],
        Action::Transition {
            to: State::Backup,
            ..
        }
    ));
    assert_eq!(acts[1], Action::Notify(State::Backup));
    assert_eq!(m.next_deadline(), Some(3218));
    // Start is not repeated.
    assert!(m.start(5).is_empty());
}

#[test]
fn effective_priority_clamps() {
    let mut m = Machine::new(params(1, 250));
    m.set_priority_adjust(0, 20);
    assert_eq!(m.effective_priority(), 254);
    m.set_priority_adjust(0, -300);
    assert_eq!(m.effective_priority(), 1);
    let mut o = Machine::new(params(1, 255));
    o.set_priority_adjust(0, 5);
    assert_eq!(o.effective_priority(), 254);
    o.set_priority_adjust(0, -10);
    assert_eq!(o.effective_priority(), 245);
    o.set_priority_adjust(0, 0);
    assert_eq!(o.effective_priority(), 255);
}

#[test]
fn tracking_weight_above_peer_preempts() {
    // B (100) is master; A (90) is backup until a tracked script adds 20.
    let mut net = Net::new(vec![params(1, 90), params(2, 100)]);
    net.start(B);
    net.run_until(5_000);
    net.start(A);
    net.run_until(10_000);
    assert_eq!(net.state(A), State::Backup);
    net.apply(A, |m, now| m.set_priority_adjust(now, 20));
    assert_eq!(net.nodes[A].m.effective_priority(), 110);
    net.run_until(30_000);
    assert_eq!(net.state(A), State::Master);
    assert_eq!(net.state(B), State::Backup);
    // A's timer was last reset by B's advert at 9609, while A was still at 90:
    // 3000 + ⌊166 × 1000 / 256⌋ = 3648; B's later adverts (100 < 110) are ignored.
    assert_eq!(net.became_master_at(A), vec![9609 + 3648]);
    assert_eq!(
        net.transitions(B).last().map(|t| t.2.clone()),
        Some("higher priority 110 from 10.0.0.1".into())
    );
}

#[test]
fn tracking_weight_lowers_master_below_backup() {
    let mut net = a100_b200();
    net.run_until(10_000);
    net.apply(B, |m, now| m.set_priority_adjust(now, -150));
    // The master tells the backup its new priority at once.
    assert_eq!(net.adverts(B).last(), Some(&(10_000, 50)));
    net.run_until(20_000);
    assert_eq!(net.became_master_at(A), vec![9218 + 3609]);
    assert_eq!(net.state(B), State::Backup);
}

#[test]
fn fault_leaves_master_and_peer_takes_over() {
    let mut net = a100_b200();
    net.run_until(10_000);
    net.apply(B, |m, now| m.set_fault(now, true));
    assert_eq!(net.state(B), State::Fault);
    assert_eq!(net.nodes[B].m.next_deadline(), None);
    let b: Vec<Action> = net
        .log
        .iter()
        .filter(|e| e.node == B && e.t == 10_000)
        .map(|e| e.action.clone())
        .collect();
    assert_eq!(
        b,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            Action::Transition {
                to: State::Fault,
                reason: "fault".into()
            },
            Action::Notify(State::Fault),
        ]
    );
    net.run_until(20_000);
    assert_eq!(net.became_master_at(A), vec![10_609]);
    // In fault B ignores adverts.
    assert_eq!(net.state(B), State::Fault);
    assert_eq!(net.nodes[B].m.master(), None);
    net.apply(B, |m, now| m.set_fault(now, false));
    assert_eq!(
        net.transitions(B).last().map(|t| (t.1, t.2.clone())),
        Some((State::Backup, "fault cleared".into()))
    );
    net.run_until(40_000);
    assert_eq!(net.became_master_at(B), vec![3218, 20_000 + 3218]);
    assert_eq!(net.state(A), State::Backup);
}

#[test]
fn fault_before_start_starts_in_fault() {
    let mut m = Machine::new(params(1, 255));
    assert!(m.set_fault(0, true).is_empty());
    let acts = m.start(0);
    assert_eq!(m.state(), State::Fault);
    assert!(!acts.iter().any(|a| matches!(a, Action::SendAdvert { .. })));
    let acts = m.set_fault(100, false);
    assert_eq!(m.state(), State::Master);
    assert!(acts.contains(&Action::AddVips));
}

#[test]
fn v2_interval_in_seconds() {
    let v2 = |last, prio| Params {
        version: Version::V2,
        advert_int_cs: 200,
        ..params(last, prio)
    };
    let mut net = Net::new(vec![v2(1, 100), v2(2, 200)]);
    net.start(A);
    net.start(B);
    net.run_until(10_000);
    // 2 s: 6000 + ⌊56 × 2000 / 256⌋ = 6437.
    assert_eq!(net.became_master_at(B), vec![6437]);
    assert_eq!(net.adverts(B), vec![(6437, 200), (8437, 200)]);
    net.crash(B);
    net.run_until(30_000);
    // 6000 + ⌊156 × 2000 / 256⌋ = 7218 after B's last advert.
    assert_eq!(net.became_master_at(A), vec![8437 + 7218]);

    // v2 discards an advert whose interval differs from ours (RFC 3768 7.1).
    let mut m = Machine::new(v2(1, 100));
    m.start(0);
    assert_eq!(m.next_deadline(), Some(7218));
    assert!(m.on_advert(1000, ip(2), 200, 100).is_empty());
    assert_eq!(m.next_deadline(), Some(7218));
    assert_eq!(m.master(), None);
    m.on_advert(1000, ip(2), 200, 200);
    assert_eq!(m.next_deadline(), Some(1000 + 7218));
}

#[test]
fn v3_backup_learns_master_interval() {
    let mut m = Machine::new(params(1, 100));
    m.start(0);
    m.on_advert(500, ip(2), 200, 300);
    // 3 s advertised: 9000 + ⌊156 × 3000 / 256⌋ = 9000 + 1828.
    assert_eq!(m.next_deadline(), Some(500 + 10_828));
    assert_eq!(m.master(), Some(ip(2)));
}

#[test]
fn master_ignores_lower_priority_and_keeps_sending() {
    let mut net = Net::new(vec![params(1, 100), params(2, 200)]);
    net.connected = false;
    net.start(A);
    net.start(B);
    net.run_until(4_000);
    assert_eq!(net.state(A), State::Master);
    assert_eq!(net.state(B), State::Master);
    net.connected = true;
    net.run_until(15_000);
    assert_eq!(net.state(A), State::Backup);
    assert_eq!(net.state(B), State::Master);
    assert_eq!(net.transitions(B).len(), 2, "B: Init->Backup->Master only");
    let times: Vec<u64> = net.adverts(B).iter().map(|(t, _)| *t).collect();
    let expected: Vec<u64> = (0..12).map(|k| 3218 + 1000 * k).collect();
    assert_eq!(times, expected, "one advert per interval, none extra");

    // Direct: a lower-priority advert changes nothing on a master.
    let mut m = Machine::new(params(2, 255));
    m.start(0);
    assert!(m.on_advert(10, ip(1), 100, 100).is_empty());
    assert_eq!(m.next_deadline(), Some(1000));
    assert_eq!(m.on_timer(1000), vec![Action::SendAdvert { priority: 255 }]);
    assert_eq!(m.next_deadline(), Some(2000));
    // Early calls fire nothing.
    assert!(m.on_timer(1500).is_empty());
}

#[test]
fn master_answers_priority_zero_at_once() {
    let mut m = Machine::new(params(2, 255));
    m.start(0);
    assert_eq!(
        m.on_advert(400, ip(1), 0, 100),
        vec![Action::SendAdvert { priority: 255 }]
    );
    assert_eq!(m.next_deadline(), Some(1400));
    assert_eq!(m.state(), State::Master);
}

#[test]
fn stop_from_backup_sends_nothing() {
    let mut m = Machine::new(params(1, 100));
    m.start(0);
    let acts = m.stop(10);
    assert_eq!(
        acts,
        vec![
            Action::Transition {
                to: State::Stopped,
                reason: "stopped".into()
            },
            Action::Notify(State::Stopped),
        ]
    );
    assert_eq!(m.next_deadline(), None);
    assert!(m.stop(20).is_empty());
    assert!(m.on_advert(30, ip(2), 200, 100).is_empty());
}

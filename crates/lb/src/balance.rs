//! Server selection, as pure logic over a snapshot of the backend's servers.
//!
//! The caller (the engine) describes each server as a [`Candidate`]; [`Balancer::pick`]
//! returns where the session goes: straight to a server with a free slot, into one
//! server's queue when every eligible server is at `maxconn`, or nowhere when every
//! queue is full too.

use std::collections::HashMap;

use crate::config::Algorithm;
use crate::config::HashType;

/// A server as the balancer sees it at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Stable server id within its backend (HAProxy's `srv_id`).
    pub id: u32,
    /// Effective weight; 0 takes the server out of rotation.
    pub weight: u32,
    /// Sessions being served plus sessions waiting in this server's queue.
    pub load: u32,
    /// `maxconn` not reached.
    pub has_slot: bool,
    /// `maxqueue` not reached.
    pub queue_room: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Index into the candidate slice: connect now.
    Server(usize),
    /// Index into the candidate slice: wait in that server's queue.
    Queue(usize),
    /// Every eligible server and queue is full.
    Full,
}

/// What the balancer must know of a server to choose the eligible set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligibility {
    pub usable: bool,
    pub backup: bool,
}

/// HAProxy's rule: active servers while any is usable; otherwise the first usable backup,
/// or every usable backup with `option allbackups`. Returns indices in declaration order.
pub fn eligible(servers: &[Eligibility], allbackups: bool) -> Vec<usize> {
    let active: Vec<usize> = (0..servers.len())
        .filter(|&i| servers[i].usable && !servers[i].backup)
        .collect();
    if !active.is_empty() {
        return active;
    }
    let mut backups = (0..servers.len()).filter(|&i| servers[i].usable && servers[i].backup);
    if allbackups {
        backups.collect()
    } else {
        backups.next().into_iter().collect()
    }
}

/// Per-backend balancing state (round-robin positions, hash ring). Callers serialise
/// access; picks are short and never touch I/O.
#[derive(Debug, Default)]
pub struct Balancer {
    /// Smooth weighted round-robin accumulators, by server id.
    current: HashMap<u32, i64>,
    /// Last id chosen by leastconn, to rotate among equally loaded servers.
    last_lc: Option<u32>,
    ring: Ring,
}

#[derive(Debug, Default)]
struct Ring {
    members: Vec<(u32, u32)>,
    points: Vec<(u64, u32)>,
}

/// Points per unit of weight on the consistent-hash ring.
const RING_POINTS_PER_WEIGHT: u32 = 16;

impl Balancer {
    pub fn pick(
        &mut self,
        algo: Algorithm,
        hash: HashType,
        cands: &[Candidate],
        client_key: u64,
    ) -> Pick {
        let live: Vec<usize> = (0..cands.len()).filter(|&i| cands[i].weight > 0).collect();
        if live.is_empty() {
            return Pick::Full;
        }
        if algo == Algorithm::Source {
            if let Some(i) = self.hashed(hash, cands, &live, client_key) {
                if cands[i].has_slot {
                    return Pick::Server(i);
                }
                if cands[i].queue_room {
                    return Pick::Queue(i);
                }
            }
            // That server's queue is full: redispatch like any other algorithm.
            return self.fallback(cands, &live);
        }
        let free: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| cands[i].has_slot)
            .collect();
        if free.is_empty() {
            return self.fallback(cands, &live);
        }
        let i = match algo {
            Algorithm::RoundRobin | Algorithm::StaticRr => self.smooth_rr(cands, &free),
            Algorithm::LeastConn => self.least_loaded(cands, &free),
            Algorithm::First => free[0],
            // Hash-based picks returned above.
            Algorithm::Source => free[0],
        };
        Pick::Server(i)
    }

    fn fallback(&mut self, cands: &[Candidate], live: &[usize]) -> Pick {
        let roomy: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| cands[i].queue_room)
            .collect();
        if roomy.is_empty() {
            Pick::Full
        } else {
            Pick::Queue(self.least_loaded(cands, &roomy))
        }
    }

    /// Nginx-style smooth weighted round-robin: spreads a server's turns evenly instead
    /// of in bursts, as HAProxy's roundrobin does.
    fn smooth_rr(&mut self, cands: &[Candidate], free: &[usize]) -> usize {
        let total: i64 = free.iter().map(|&i| i64::from(cands[i].weight)).sum();
        let mut best = free[0];
        let mut best_cur = i64::MIN;
        for &i in free {
            let cur = self.current.entry(cands[i].id).or_insert(0);
            *cur += i64::from(cands[i].weight);
            if *cur > best_cur {
                best_cur = *cur;
                best = i;
            }
        }
        if let Some(cur) = self.current.get_mut(&cands[best].id) {
            *cur -= total;
        }
        best
    }

    /// Lowest load/weight; ties rotate so equal servers share new sessions.
    fn least_loaded(&mut self, cands: &[Candidate], set: &[usize]) -> usize {
        let lighter = |a: &Candidate, b: &Candidate| {
            u64::from(a.load) * u64::from(b.weight) < u64::from(b.load) * u64::from(a.weight)
        };
        let mut best = set[0];
        for &i in &set[1..] {
            if lighter(&cands[i], &cands[best]) {
                best = i;
            }
        }
        let b = cands[best];
        let ties: Vec<usize> = set
            .iter()
            .copied()
            .filter(|&i| !lighter(&b, &cands[i]) && !lighter(&cands[i], &b))
            .collect();
        let chosen = match self.last_lc {
            Some(last) => ties
                .iter()
                .copied()
                .find(|&i| cands[i].id > last)
                .unwrap_or(ties[0]),
            None => ties[0],
        };
        self.last_lc = Some(cands[chosen].id);
        chosen
    }

    fn hashed(
        &mut self,
        hash: HashType,
        cands: &[Candidate],
        live: &[usize],
        key: u64,
    ) -> Option<usize> {
        let h = mix(key);
        match hash {
            HashType::MapBased => {
                let total: u64 = live.iter().map(|&i| u64::from(cands[i].weight)).sum();
                let mut slot = h % total.max(1);
                for &i in live {
                    let w = u64::from(cands[i].weight);
                    if slot < w {
                        return Some(i);
                    }
                    slot -= w;
                }
                None
            }
            HashType::Consistent => {
                let members: Vec<(u32, u32)> = live
                    .iter()
                    .map(|&i| (cands[i].id, cands[i].weight))
                    .collect();
                self.ring.rebuild_if_changed(members);
                let id = self.ring.lookup(h)?;
                live.iter().copied().find(|&i| cands[i].id == id)
            }
        }
    }
}

impl Ring {
    fn rebuild_if_changed(&mut self, members: Vec<(u32, u32)>) {
        if members == self.members {
            return;
        }
        let mut points = Vec::new();
        for &(id, weight) in &members {
            for n in 0..weight.saturating_mul(RING_POINTS_PER_WEIGHT) {
                points.push((mix((u64::from(id) << 32) | u64::from(n)), id));
            }
        }
        points.sort_unstable();
        self.points = points;
        self.members = members;
    }

    fn lookup(&self, h: u64) -> Option<u32> {
        if self.points.is_empty() {
            return None;
        }
        let at = self.points.partition_point(|&(p, _)| p < h);
        Some(self.points[at % self.points.len()].1)
    }
}

/// A fast 64-bit finaliser (splitmix64) so neighbouring addresses spread over the ring.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hash key of a client address for `balance source`.
pub fn source_key(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => {
            let n = u128::from(v6);
            (n as u64) ^ ((n >> 64) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: u32, weight: u32, load: u32) -> Candidate {
        Candidate {
            id,
            weight,
            load,
            has_slot: true,
            queue_room: true,
        }
    }

    fn counts(b: &mut Balancer, algo: Algorithm, cands: &[Candidate], n: usize) -> Vec<usize> {
        let mut c = vec![0; cands.len()];
        for k in 0..n {
            match b.pick(algo, HashType::MapBased, cands, k as u64) {
                Pick::Server(i) => c[i] += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        c
    }

    #[test]
    fn roundrobin_honours_weights_smoothly() {
        let cands = [cand(1, 5, 0), cand(2, 1, 0), cand(3, 1, 0)];
        let mut b = Balancer::default();
        let seq: Vec<usize> = (0..7)
            .map(
                |_| match b.pick(Algorithm::RoundRobin, HashType::MapBased, &cands, 0) {
                    Pick::Server(i) => i,
                    p => panic!("{p:?}"),
                },
            )
            .collect();
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 5);
        // Smooth: the heavy server never takes more than 3 turns in a row.
        assert!(
            !seq.windows(4).any(|w| w.iter().all(|&i| i == 0)),
            "{seq:?}"
        );
        assert_eq!(
            counts(&mut b, Algorithm::RoundRobin, &cands, 700),
            vec![500, 100, 100]
        );
    }

    #[test]
    fn weight_zero_is_never_picked() {
        let cands = [cand(1, 0, 0), cand(2, 1, 0)];
        let mut b = Balancer::default();
        assert_eq!(
            counts(&mut b, Algorithm::RoundRobin, &cands, 10),
            vec![0, 10]
        );
        assert_eq!(
            counts(&mut b, Algorithm::LeastConn, &cands, 10),
            vec![0, 10]
        );
        let none = [cand(1, 0, 0)];
        assert_eq!(
            b.pick(Algorithm::First, HashType::MapBased, &none, 0),
            Pick::Full
        );
    }

    #[test]
    fn leastconn_picks_lowest_load_per_weight() {
        let cands = [cand(1, 1, 3), cand(2, 1, 1), cand(3, 1, 2)];
        let mut b = Balancer::default();
        assert_eq!(
            b.pick(Algorithm::LeastConn, HashType::MapBased, &cands, 0),
            Pick::Server(1)
        );
        // Weight 3 with 5 sessions (1.67 each) beats weight 1 with 2.
        let cands = [cand(1, 3, 5), cand(2, 1, 2)];
        assert_eq!(
            b.pick(Algorithm::LeastConn, HashType::MapBased, &cands, 0),
            Pick::Server(0)
        );
    }

    #[test]
    fn leastconn_rotates_among_ties() {
        let cands = [cand(1, 1, 0), cand(2, 1, 0), cand(3, 1, 0)];
        let mut b = Balancer::default();
        let picks: Vec<Pick> = (0..4)
            .map(|_| b.pick(Algorithm::LeastConn, HashType::MapBased, &cands, 0))
            .collect();
        assert_eq!(
            picks,
            vec![
                Pick::Server(0),
                Pick::Server(1),
                Pick::Server(2),
                Pick::Server(0)
            ]
        );
    }

    #[test]
    fn leastconn_counts_queued_sessions_when_all_full() {
        let mut cands = [cand(1, 1, 4), cand(2, 1, 2)];
        for c in &mut cands {
            c.has_slot = false;
        }
        let mut b = Balancer::default();
        assert_eq!(
            b.pick(Algorithm::LeastConn, HashType::MapBased, &cands, 0),
            Pick::Queue(1)
        );
        cands[1].queue_room = false;
        assert_eq!(
            b.pick(Algorithm::LeastConn, HashType::MapBased, &cands, 0),
            Pick::Queue(0)
        );
        cands[0].queue_room = false;
        assert_eq!(
            b.pick(Algorithm::RoundRobin, HashType::MapBased, &cands, 0),
            Pick::Full
        );
    }

    #[test]
    fn first_fills_lowest_id_first() {
        let mut cands = [cand(1, 1, 0), cand(2, 1, 0)];
        let mut b = Balancer::default();
        assert_eq!(
            b.pick(Algorithm::First, HashType::MapBased, &cands, 0),
            Pick::Server(0)
        );
        cands[0].has_slot = false;
        assert_eq!(
            b.pick(Algorithm::First, HashType::MapBased, &cands, 0),
            Pick::Server(1)
        );
    }

    #[test]
    fn source_is_sticky_and_spreads() {
        let cands = [cand(1, 1, 0), cand(2, 1, 0), cand(3, 1, 0)];
        let mut b = Balancer::default();
        for key in 0..50u64 {
            let a = b.pick(Algorithm::Source, HashType::MapBased, &cands, key);
            let again = b.pick(Algorithm::Source, HashType::MapBased, &cands, key);
            assert_eq!(a, again);
        }
        let c = counts(&mut b, Algorithm::Source, &cands, 3000);
        assert!(c.iter().all(|&n| n > 800), "{c:?}");
    }

    #[test]
    fn consistent_hash_moves_only_the_removed_servers_keys() {
        let all = [cand(1, 1, 0), cand(2, 1, 0), cand(3, 1, 0)];
        let without_2 = [cand(1, 1, 0), cand(3, 1, 0)];
        let mut b = Balancer::default();
        let mut moved = 0;
        for key in 0..1000u64 {
            let Pick::Server(i) = b.pick(Algorithm::Source, HashType::Consistent, &all, key) else {
                panic!()
            };
            let before = all[i].id;
            let Pick::Server(j) = b.pick(Algorithm::Source, HashType::Consistent, &without_2, key)
            else {
                panic!()
            };
            let after = without_2[j].id;
            if before != 2 {
                assert_eq!(before, after, "key {key} moved although its server stayed");
            } else {
                moved += 1;
            }
        }
        assert!(
            moved > 200 && moved < 470,
            "server 2 held {moved} of 1000 keys"
        );
    }

    #[test]
    fn source_redispatches_when_its_queue_is_full() {
        let mut cands = [cand(1, 1, 0), cand(2, 1, 0)];
        let mut b = Balancer::default();
        let Pick::Server(i) = b.pick(Algorithm::Source, HashType::MapBased, &cands, 7) else {
            panic!()
        };
        cands[i].has_slot = false;
        cands[i].queue_room = false;
        cands[1 - i].has_slot = false;
        assert_eq!(
            b.pick(Algorithm::Source, HashType::MapBased, &cands, 7),
            Pick::Queue(1 - i)
        );
    }

    #[test]
    fn backups_only_when_no_active_server() {
        let e = |usable, backup| Eligibility { usable, backup };
        let s = [
            e(true, false),
            e(false, false),
            e(true, true),
            e(true, true),
        ];
        assert_eq!(eligible(&s, false), vec![0]);
        let s = [
            e(false, false),
            e(false, true),
            e(true, true),
            e(true, true),
        ];
        assert_eq!(eligible(&s, false), vec![2]);
        assert_eq!(eligible(&s, true), vec![2, 3]);
        let s = [e(false, false), e(false, true)];
        assert!(eligible(&s, true).is_empty());
    }
}

//! CPython's `difflib.SequenceMatcher(None, a, b)` over the characters (code points) of two
//! strings: `ratio()` and `get_matching_blocks()`, autojunk included.
//!
//! Behaviour reproduced exactly, because API Pack's thresholds (`ratio() > 0.9`) are sensitive
//! to it: when `len(b) >= 200`, characters occurring more than `len(b) // 100 + 1` times are
//! "popular" and dropped from the index, so they never start a match but may extend one at either
//! end; the longest match prefers the smallest `i`, then the smallest `j`; blocks are found by
//! recursing on the left and right remainders, sorted, and adjacent blocks merged.

use rustc_hash::FxHashMap;

/// One matching block `a[a_start..a_start+size] == b[b_start..b_start+size]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Match {
    pub a: usize,
    pub b: usize,
    pub size: usize,
}

/// A matcher for one (a, b) pair, `b` indexed once as CPython's `__chain_b` does.
pub struct SequenceMatcher {
    a: Vec<char>,
    b: Vec<char>,
    /// Positions of each non-popular character of `b`, ascending.
    b2j: FxHashMap<char, Vec<usize>>,
    /// Longest-run lengths ending at `j` for the previous and current row, double-buffered and
    /// stamped with the row's tick, replacing CPython's fresh per-row dicts without clearing.
    run_len: [Vec<usize>; 2],
    run_tick: [Vec<u64>; 2],
    /// Advanced once per row and once more per `find_longest_match` call, so that no entry from
    /// an earlier call or a non-adjacent row ever looks like "the previous row".
    tick: u64,
}

impl SequenceMatcher {
    pub fn new(a: &str, b: &str) -> Self {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut b2j: FxHashMap<char, Vec<usize>> = FxHashMap::default();
        for (j, &c) in b.iter().enumerate() {
            b2j.entry(c).or_default().push(j);
        }
        if b.len() >= 200 {
            let ntest = b.len() / 100 + 1;
            b2j.retain(|_, idxs| idxs.len() <= ntest);
        }
        let n = b.len();
        Self {
            a,
            b,
            b2j,
            run_len: [vec![0; n], vec![0; n]],
            run_tick: [vec![0; n], vec![0; n]],
            tick: 0,
        }
    }

    /// `find_longest_match(alo, ahi, blo, bhi)` (no junk function, so only the junk-free and
    /// popular-extension phases apply).
    pub fn find_longest_match(&mut self, alo: usize, ahi: usize, blo: usize, bhi: usize) -> Match {
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0usize);
        self.tick += 1;
        for i in alo..ahi {
            self.tick += 1;
            let (cur, prev) = ((self.tick % 2) as usize, ((self.tick + 1) % 2) as usize);
            let Some(js) = self.b2j.get(&self.a[i]) else {
                continue;
            };
            let start = js.partition_point(|&j| j < blo);
            for &j in &js[start..] {
                if j >= bhi {
                    break;
                }
                let before = if j > 0 && self.run_tick[prev][j - 1] == self.tick - 1 {
                    self.run_len[prev][j - 1]
                } else {
                    0
                };
                let k = before + 1;
                self.run_len[cur][j] = k;
                self.run_tick[cur][j] = self.tick;
                if k > bestsize {
                    besti = i + 1 - k;
                    bestj = j + 1 - k;
                    bestsize = k;
                }
            }
        }
        // Extend across popular characters, which could not start or continue a run above.
        while besti > alo && bestj > blo && self.a[besti - 1] == self.b[bestj - 1] {
            besti -= 1;
            bestj -= 1;
            bestsize += 1;
        }
        while besti + bestsize < ahi
            && bestj + bestsize < bhi
            && self.a[besti + bestsize] == self.b[bestj + bestsize]
        {
            bestsize += 1;
        }
        Match {
            a: besti,
            b: bestj,
            size: bestsize,
        }
    }

    /// `get_matching_blocks()`, including the final `(len(a), len(b), 0)` sentinel.
    pub fn matching_blocks(&mut self) -> Vec<Match> {
        let (la, lb) = (self.a.len(), self.b.len());
        let mut queue = vec![(0, la, 0, lb)];
        let mut blocks = Vec::new();
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let m = self.find_longest_match(alo, ahi, blo, bhi);
            if m.size > 0 {
                blocks.push(m);
                if alo < m.a && blo < m.b {
                    queue.push((alo, m.a, blo, m.b));
                }
                if m.a + m.size < ahi && m.b + m.size < bhi {
                    queue.push((m.a + m.size, ahi, m.b + m.size, bhi));
                }
            }
        }
        blocks.sort_by_key(|m| (m.a, m.b, m.size));
        let mut merged = Vec::with_capacity(blocks.len() + 1);
        let (mut i1, mut j1, mut k1) = (0, 0, 0);
        for m in blocks {
            if i1 + k1 == m.a && j1 + k1 == m.b {
                k1 += m.size;
            } else {
                if k1 > 0 {
                    merged.push(Match {
                        a: i1,
                        b: j1,
                        size: k1,
                    });
                }
                (i1, j1, k1) = (m.a, m.b, m.size);
            }
        }
        if k1 > 0 {
            merged.push(Match {
                a: i1,
                b: j1,
                size: k1,
            });
        }
        merged.push(Match {
            a: la,
            b: lb,
            size: 0,
        });
        merged
    }

    /// `ratio()`: 2·M / (len(a) + len(b)), 1.0 when both are empty.
    pub fn ratio(&mut self) -> f64 {
        let matches: usize = self.matching_blocks().iter().map(|m| m.size).sum();
        let length = self.a.len() + self.b.len();
        if length == 0 {
            1.0
        } else {
            2.0 * matches as f64 / length as f64
        }
    }
}

/// `difflib.SequenceMatcher(None, a, b).ratio()`.
pub fn ratio(a: &str, b: &str) -> f64 {
    SequenceMatcher::new(a, b).ratio()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_docs_examples() {
        // From the difflib documentation.
        let mut s = SequenceMatcher::new("abxcd", "abcd");
        assert_eq!(
            s.matching_blocks(),
            [
                Match {
                    a: 0,
                    b: 0,
                    size: 2
                },
                Match {
                    a: 3,
                    b: 2,
                    size: 2
                },
                Match {
                    a: 5,
                    b: 4,
                    size: 0
                }
            ]
        );
        assert_eq!(
            SequenceMatcher::new(" abcd", "abcd abcd").find_longest_match(0, 5, 0, 9),
            Match {
                a: 0,
                b: 4,
                size: 5
            }
        );
        assert_eq!(ratio("", ""), 1.0);
        assert_eq!(ratio("abc", ""), 0.0);
    }

    #[test]
    fn autojunk_changes_the_ratio_of_long_strings() {
        // 'a' is popular in b, so no match can start; an empty match only grows when the
        // regions already agree at their start, which 'x' prevents. Values from CPython.
        let a = format!("x{}", "a".repeat(10));
        let b = "a".repeat(250);
        assert_eq!(ratio(&a, &b), 0.0);
        assert_eq!(ratio(&b, &a), 20.0 / 261.0);
        assert_eq!(ratio(&"a".repeat(10), &b), 20.0 / 260.0);
    }
}

//! Containment of panics inside the `fst` crate.
//!
//! fst 0.4 trusts the bytes of a dictionary: on a structurally invalid one
//! (a transition address out of range, a node header that runs off the
//! start of the data, outputs whose sum overflows) it indexes out of bounds
//! in `raw/node.rs` or overflows, and panics. It does so only on bytes no
//! builder writes, and the index file's CRC32 keeps disk damage away from it,
//! but a crafted file with a valid checksum reaches it, and the engine's
//! invariant is that recovery and queries never panic, whatever the bytes.
//!
//! So the sealed index ([`super::file`]) calls into fst only through
//! [`guard`], which turns a panic into an error the caller reports as
//! corruption, and at load it checks the whole dictionary with
//! [`check_nodes`], which decodes every node once (a dictionary that fails
//! is treated like any damaged index file: rebuilt from its segment). It
//! walks nodes rather than streaming keys: that is linear in the size of the
//! dictionary where a crafted one can have exponentially many paths, it is
//! cheaper, and it also covers what only lookups read (the per-node
//! transition table, which a stream never touches). Lookups and streams stay
//! guarded anyway.
//!
//! Without a panic, [`guard`] costs a call and two thread-local writes.
//!
//! A guarded closure must call fst and nothing else that can panic (no
//! callbacks into the rest of the engine or the caller; bookkeeping of its
//! own only with checked reads and saturating arithmetic), so that a panic it
//! contains is fst's and never hides a bug of ours; and what fst leaves
//! behind after a panic (a half-advanced stream) must be dropped, not used.
//! The fuzz target `decode_index` relies on this: its panic hook lets a
//! panic pass without aborting only while [`inside`] is true (see
//! `crate::fuzzing::contain_fst_panics`).

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {

    /// How many [`guard`] calls are running on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, which calls into fst (and nothing else that can panic); a panic
/// inside it becomes `Err` with the panic's message.
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    /// Leaves the guarded region on return and on unwind alike.
    struct Region;
    impl Drop for Region {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    DEPTH.with(|d| d.set(d.get().saturating_add(1)));
    let _region = Region;
    // Unwind safety: `f` reads immutable dictionary bytes; the only state it
    // may leave half-updated is an fst stream, which callers drop on `Err`.
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| message(&*payload))
}

/// Whether this thread is inside [`guard`] (for the fuzz targets' panic hook).
pub(crate) fn inside() -> bool {
    DEPTH.with(Cell::get) > 0
}

fn message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    format!("invalid term dictionary (fst panicked: {text})")
}

/// Checks the whole dictionary, decoding every node reachable from the root
/// once with each of its transitions, so that nothing a stream or a lookup
/// reads later can panic and no stream can run away:
///
/// * a transition leads to a lower address (fst writes children first), so
///   the graph has no cycle and the walk ends;
/// * transitions are in strictly increasing input order, so streams yield
///   keys in strictly increasing order; in a node with a transition table
///   (which only lookups read, never streams), the table finds each
///   transition by its input and nothing else, so lookups agree with streams;
/// * a node without transitions is final (but for the root of an empty
///   dictionary): every path ends in a key, so a stream yields a key at
///   least every `2 × depth` steps;
/// * there are exactly `len` keys (the count in the fst's header) and at
///   most `max_keys`, counted over paths (a crafted graph can have
///   exponentially many in its size), so streaming every key takes time in
///   proportion to the file, not to the graph's paths;
/// * every output is at most `max_value`: a value is the sum of the outputs
///   along its key's path, so with `max_value` the largest valid value
///   values stay plausible, and the sums cannot overflow unless
///   `depth × max_value` does (sections of 4 GiB and more; a guarded call
///   then reports it).
///
/// Work is linear in the dictionary's size (a node is decoded once however
/// many paths reach it), memory 4 bytes per dictionary byte. One [`guard`]
/// around the whole walk: its own bookkeeping cannot panic (checked reads,
/// saturating sums), so a panic in it is fst's.
pub(crate) fn check_nodes<D: AsRef<[u8]>>(
    fst: &fst::raw::Fst<D>,
    max_keys: u64,
    max_value: u64,
) -> Result<(), String> {
    guard(|| walk(fst, max_keys, max_value)).and_then(|r| r)
}

/// [`check_nodes`], unguarded.
fn walk<D: AsRef<[u8]>>(
    fst: &fst::raw::Fst<D>,
    max_keys: u64,
    max_value: u64,
) -> Result<(), String> {
    /// A node being walked: its next transition and the keys below the
    /// transitions done so far.
    struct Frame<'f> {
        node: fst::raw::Node<'f>,
        next: usize,
        last_input: Option<u8>,
        keys: u64,
    }
    let bad = |what: String| Err(format!("invalid term dictionary: {what}"));
    let size = fst.as_bytes().len();
    // Per address: 0 while not done, else 1 + the keys at and below it
    // (u32 to halve what is allocated and zeroed: no valid index comes near
    // 2^32 keys, and more is an error below).
    let mut done = vec![0u32; size];
    let root = fst.root();
    let mut stack = vec![Frame {
        node: root,
        next: 0,
        last_input: None,
        keys: 0,
    }];
    check_node(&root, true, max_value)?;
    while let Some(top) = stack.last_mut() {
        let i = top.next;
        if i < top.node.len() {
            top.next += 1;
            let t = top.node.transition(i);
            let addr = top.node.addr();
            if top.last_input.is_some_and(|l| l >= t.inp) {
                return bad(format!("node {addr}'s transitions are out of order"));
            }
            top.last_input = Some(t.inp);
            if t.out.value() > max_value {
                return bad(format!("node {addr} has an output beyond the postings"));
            }
            if t.addr >= addr {
                return bad(format!(
                    "node {addr} has a transition to {}, not below it",
                    t.addr
                ));
            }
            match done.get(t.addr) {
                None => {
                    return bad(format!(
                        "a transition to {} beyond its {size} bytes",
                        t.addr
                    ))
                }
                Some(0) => {
                    let child = fst.node(t.addr);
                    check_node(&child, false, max_value)?;
                    stack.push(Frame {
                        node: child,
                        next: 0,
                        last_input: None,
                        keys: 0,
                    });
                }
                Some(&n) => top.keys = top.keys.saturating_add(u64::from(n - 1)),
            }
        } else {
            let (keys, addr) = (
                top.keys.saturating_add(u64::from(top.node.is_final())),
                top.node.addr(),
            );
            stack.pop();
            if keys > max_keys.min(u64::from(u32::MAX - 1)) {
                return bad(format!(
                    "more keys than the postings can hold (at most {max_keys})"
                ));
            }
            if let (Some(slot), Ok(n)) = (done.get_mut(addr), u32::try_from(keys + 1)) {
                *slot = n;
            }
            match stack.last_mut() {
                Some(parent) => parent.keys = parent.keys.saturating_add(keys),
                None if keys != fst.len() as u64 => {
                    return bad(format!("{keys} keys, its header says {}", fst.len()));
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// The checks of [`check_nodes`] that concern one node alone.
fn check_node(node: &fst::raw::Node<'_>, is_root: bool, max_value: u64) -> Result<(), String> {
    let bad = |what: &str| {
        Err(format!(
            "invalid term dictionary: node {} {what}",
            node.addr()
        ))
    };
    if node.is_empty() && !node.is_final() && !is_root {
        return bad("ends no key and has no transitions");
    }
    if node.final_output().value() > max_value {
        return bad("has an output beyond the postings");
    }
    // fst gives a node of more than 32 transitions a table from input byte
    // to transition; lookups use it, streams never do. It must find exactly
    // the transitions there are (and cannot panic if every byte reads).
    if node.len() > 32 {
        let mut want = [None; 256];
        for i in 0..node.len() {
            want[usize::from(node.transition(i).inp)] = Some(i);
        }
        for b in 0..=255u8 {
            if node.find_input(b) != want[usize::from(b)] {
                return bad("has a transition table that disagrees with its transitions");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fst_of(keys: &[&str]) -> fst::raw::Fst<Vec<u8>> {
        let mut b = fst::raw::Builder::memory();
        for (i, k) in keys.iter().enumerate() {
            b.insert(k, i as u64).expect("sorted keys");
        }
        b.into_fst()
    }

    #[test]
    fn a_panic_becomes_an_error_and_the_region_is_left() {
        assert!(!inside());
        let r: Result<(), String> = guard(|| {
            assert!(inside());
            panic!("boom")
        });
        let e = r.expect_err("the panic is contained");
        assert!(e.contains("boom"), "{e}");
        assert!(!inside(), "the region ends on unwind");
        assert_eq!(guard(|| 7), Ok(7));
        assert!(!inside());
    }

    #[test]
    fn valid_dictionaries_pass() {
        // The last set has a node with more than 32 transitions: fst gives
        // it a transition table, which the walk reads through find_input.
        let many: Vec<String> = (0u8..200).map(|b| format!("k{}", b as char)).collect();
        let mut many: Vec<&str> = many.iter().map(String::as_str).collect();
        many.sort_unstable();
        many.dedup();
        for keys in [
            &[][..],
            &["a"][..],
            &["a", "ab", "b", "ba", "bb"][..],
            &many[..],
        ] {
            let fst = fst_of(keys);
            assert_eq!(
                check_nodes(&fst, keys.len() as u64, keys.len() as u64),
                Ok(()),
                "{keys:?}"
            );
        }
    }

    #[test]
    fn damaged_dictionaries_fail_without_panicking() {
        let good = fst_of(&["alpha", "beta", "betamax", "gamma"]).into_inner();
        let mut failures = 0;
        // Every single-byte change of the node area (not the 16-byte header
        // nor the 20-byte trailer, which fst::raw::Fst::new checks).
        for at in 16..good.len() - 20 {
            for x in [0x01u8, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] ^= x;
                let Ok(fst) = guard(|| fst::raw::Fst::new(bytes)) else {
                    continue;
                };
                let Ok(fst) = fst else { continue };
                if check_nodes(&fst, 4, 4).is_err() {
                    failures += 1;
                }
            }
        }
        assert!(failures > 0, "no damage was detected at all");
    }
}

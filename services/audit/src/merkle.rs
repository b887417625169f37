//! The Merkle tree over the log, as in Certificate Transparency (RFC 9162 §2.1).
//!
//! Leaf `i` is the hash-chain link ([`diandan_store::chain`]) of the log's `i`-th event (from
//! 0, in position order). With `SHA-256`:
//!
//! ```text
//! leaf hash  = SHA-256(0x00 || event hash)
//! node hash  = SHA-256(0x01 || left || right)
//! MTH({})    = SHA-256("")
//! MTH(D[n])  = leaf hash of D[0]                      when n = 1
//!            = node(MTH(D[0:k]), MTH(D[k:n]))         k = the largest power of 2 below n
//! ```
//!
//! Inclusion and consistency proofs, and their verification, are RFC 9162's §2.1.3 and §2.1.4
//! to the letter, so any CT library can check them.

use diandan_store::chain::Hash;
use sha2::{Digest, Sha256};

/// `SHA-256(0x00 || event hash)`.
pub fn leaf_hash(event_hash: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(event_hash);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Roots of the tree as leaves are added one by one: the perfect subtrees along its right
/// edge (at most 64 hashes), so the root of every size is known in one pass over the log.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// Roots of perfect subtrees, largest (leftmost) first.
    stack: Vec<Hash>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf, given the event's hash.
    pub fn push(&mut self, event_hash: &Hash) {
        let mut node = leaf_hash(event_hash);
        let mut size = self.size;
        // Each trailing 1 bit of the old size is a perfect subtree the new leaf completes.
        while size & 1 == 1 {
            let left = self.stack.pop().expect("a subtree per set bit");
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// `MTH` of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.stack.iter().rev();
        match nodes.next() {
            None => empty_root(),
            Some(last) => nodes.fold(*last, |right, left| node_hash(left, &right)),
        }
    }
}

/// `MTH` of a list of leaf hashes (already `leaf_hash`ed).
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// Reads the event hashes of leaves `lo..hi` back from where they are stored (`None`: they
/// cannot be read).
pub type Fetch<'a> = &'a mut dyn FnMut(u64, u64) -> Option<Vec<Hash>>;

/// The complete levels of the tree over a list of leaves, for roots and proofs: level `l`
/// holds the roots of the perfect subtrees of `2^l` leaves, so any subtree root is found in
/// O(log n) hashes.
///
/// A tree built with [`Tree::new`] keeps every level, the leaves included (about 64 bytes per
/// event in memory). One made with [`Tree::with_floor`] keeps only the levels from `floor`
/// up (about `64 / 2^floor` bytes per event): the leaves of the blocks of `2^floor` below are
/// read back ([`Fetch`]) when a root or a proof needs them — at most a few blocks each.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    floor: u32,
    /// `levels[i]`: the roots of the perfect subtrees of `2^(floor + i)` leaves.
    levels: Vec<Vec<Hash>>,
    /// The leaf hashes of the last block while it is incomplete (`floor > 0` only).
    tail: Vec<Hash>,
    size: u64,
}

impl Tree {
    /// The tree over these event hashes, in log order, every level in memory.
    pub fn new(event_hashes: impl IntoIterator<Item = Hash>) -> Tree {
        let mut tree = Tree::default();
        for hash in event_hashes {
            tree.push(&hash);
        }
        tree
    }

    /// An empty tree keeping the levels from `floor` up in memory.
    pub fn with_floor(floor: u32) -> Tree {
        assert!(floor < 32, "a block of 2^{floor} leaves");
        Tree {
            floor,
            ..Tree::default()
        }
    }

    /// Adds the next leaf.
    pub fn push(&mut self, event_hash: &Hash) {
        let leaf = leaf_hash(event_hash);
        self.size += 1;
        let node = if self.floor == 0 {
            leaf
        } else {
            self.tail.push(leaf);
            if self.tail.len() < 1 << self.floor {
                return;
            }
            let block = mth(&self.tail);
            self.tail.clear();
            block
        };
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(node);
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let below = &self.levels[level];
            let node = node_hash(&below[below.len() - 2], &below[below.len() - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(node);
            level += 1;
        }
    }

    /// How many leaves it holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the tree of the first `size` leaves (`size <= self.size()`), every leaf it
    /// needs in memory ([`Tree::new`]).
    pub fn root(&self, size: u64) -> Hash {
        self.root_with(size, &mut |_, _| None)
            .expect("a tree with its leaves in memory")
    }

    /// [`root`](Self::root), reading leaves below the floor through `fetch`.
    pub fn root_with(&self, size: u64, fetch: Fetch<'_>) -> Option<Hash> {
        assert!(size <= self.size(), "a tree of {} leaves", self.size());
        Reader::new(self, fetch).subtree(0, size)
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162
    /// §2.1.3.1), or `None` when the leaf is not in it.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        self.inclusion_proof_with(index, size, &mut |_, _| None)
    }

    /// [`inclusion_proof`](Self::inclusion_proof), reading leaves below the floor through
    /// `fetch` (`None` also when they cannot be read).
    pub fn inclusion_proof_with(
        &self,
        index: u64,
        size: u64,
        fetch: Fetch<'_>,
    ) -> Option<Vec<Hash>> {
        if index >= size || size > self.size() {
            return None;
        }
        let mut proof = Vec::new();
        Reader::new(self, fetch).path(index, 0, size, &mut proof)?;
        Some(proof)
    }

    /// The proof that the tree of `old` leaves is a prefix of the tree of `new` leaves (RFC
    /// 9162 §2.1.4.1), or `None` unless `0 < old <= new <= self.size()`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        self.consistency_proof_with(old, new, &mut |_, _| None)
    }

    /// [`consistency_proof`](Self::consistency_proof), reading leaves below the floor through
    /// `fetch` (`None` also when they cannot be read).
    pub fn consistency_proof_with(
        &self,
        old: u64,
        new: u64,
        fetch: Fetch<'_>,
    ) -> Option<Vec<Hash>> {
        if old == 0 || old > new || new > self.size() {
            return None;
        }
        let mut proof = Vec::new();
        Reader::new(self, fetch).subproof(old, 0, new, true, &mut proof)?;
        Some(proof)
    }
}

/// A tree and the blocks of leaves read for one root or proof.
struct Reader<'t, 'f> {
    tree: &'t Tree,
    fetch: Fetch<'f>,
    blocks: std::collections::HashMap<u64, Vec<Hash>>,
}

impl<'t, 'f> Reader<'t, 'f> {
    fn new(tree: &'t Tree, fetch: Fetch<'f>) -> Reader<'t, 'f> {
        Reader {
            tree,
            fetch,
            blocks: std::collections::HashMap::new(),
        }
    }

    /// The leaf hashes `lo..hi`, all within one block below the floor.
    fn leaves(&mut self, lo: u64, hi: u64) -> Option<Vec<Hash>> {
        let width = 1u64 << self.tree.floor;
        let start = lo - lo % width;
        let in_blocks = self.tree.size - self.tree.tail.len() as u64;
        let block: &[Hash] = if start >= in_blocks {
            &self.tree.tail
        } else {
            let fetch = &mut self.fetch;
            match self.blocks.entry(start) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let read = fetch(start, start + width)?;
                    if read.len() as u64 != width {
                        return None;
                    }
                    let leaves: Vec<Hash> = read.iter().map(leaf_hash).collect();
                    // Leaves read back must be the ones the tree was built from: a row altered
                    // since gives no root or proof rather than a wrong one.
                    if mth(&leaves) != self.tree.levels[0][(start >> self.tree.floor) as usize] {
                        return None;
                    }
                    e.insert(leaves)
                }
            }
        };
        block
            .get((lo - start) as usize..(hi - start) as usize)
            .map(<[Hash]>::to_vec)
    }

    /// `MTH(D[lo:hi])` for a range the RFC's recursion visits (`lo` aligned to the largest
    /// power of two the range's left part is).
    fn subtree(&mut self, lo: u64, hi: u64) -> Option<Hash> {
        let n = hi - lo;
        if n == 0 {
            return Some(empty_root());
        }
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let level = n.trailing_zeros();
            if level >= self.tree.floor {
                let at = (level - self.tree.floor) as usize;
                return Some(self.tree.levels[at][(lo >> level) as usize]);
            }
            return Some(mth(&self.leaves(lo, hi)?));
        }
        let k = split(n);
        Some(node_hash(
            &self.subtree(lo, lo + k)?,
            &self.subtree(lo + k, hi)?,
        ))
    }

    fn path(&mut self, m: u64, lo: u64, hi: u64, proof: &mut Vec<Hash>) -> Option<()> {
        let n = hi - lo;
        if n <= 1 {
            return Some(());
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, proof)?;
            proof.push(self.subtree(lo + k, hi)?);
        } else {
            self.path(m - k, lo + k, hi, proof)?;
            proof.push(self.subtree(lo, lo + k)?);
        }
        Some(())
    }

    fn subproof(
        &mut self,
        m: u64,
        lo: u64,
        hi: u64,
        whole: bool,
        proof: &mut Vec<Hash>,
    ) -> Option<()> {
        let n = hi - lo;
        if m == n {
            if !whole {
                proof.push(self.subtree(lo, hi)?);
            }
            return Some(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, whole, proof)?;
            proof.push(self.subtree(lo + k, hi)?);
        } else {
            self.subproof(m - k, lo + k, hi, false, proof)?;
            proof.push(self.subtree(lo, lo + k)?);
        }
        Some(())
    }
}

/// Whether `proof` shows the event hashed `event_hash` is leaf `index` of the tree of `size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    event_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf_hash(event_hash);
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &r == root
}

/// Whether `proof` shows the tree of `old` leaves with root `old_root` is a prefix of the tree
/// of `new` leaves with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old == 0 {
        // The empty tree is a prefix of every tree.
        return proof.is_empty();
    }
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    &fr == old_root && &sr == new_root && sn == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| Sha256::digest(i.to_be_bytes()).into())
            .collect()
    }

    /// `MTH` straight from the RFC's definition.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_definition_at_every_size() {
        let leaves = hashes(70);
        let tree = Tree::new(leaves.clone());
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), empty_root());
        assert_eq!(Tree::default().size(), 0);
        assert_eq!(Tree::default().root(0), empty_root());
        for n in 1..=70 {
            frontier.push(&leaves[n - 1]);
            let expected = reference_root(&leaves[..n]);
            assert_eq!(frontier.root(), expected, "frontier at {n}");
            assert_eq!(tree.root(n as u64), expected, "tree at {n}");
        }
    }

    #[test]
    fn a_tree_with_a_floor_reads_its_leaves_back_and_agrees_with_the_whole_tree() {
        let leaves = hashes(75);
        let whole = Tree::new(leaves.clone());
        for floor in [1, 2, 3, 6] {
            let mut tree = Tree::with_floor(floor);
            for leaf in &leaves {
                tree.push(leaf);
            }
            assert_eq!(tree.size(), 75);
            let mut reads = 0;
            let mut fetch = |lo: u64, hi: u64| {
                reads += 1;
                Some(leaves[lo as usize..hi as usize].to_vec())
            };
            for size in 1..=75 {
                assert_eq!(tree.root_with(size, &mut fetch), Some(whole.root(size)));
                for index in 0..size {
                    assert_eq!(
                        tree.inclusion_proof_with(index, size, &mut fetch),
                        whole.inclusion_proof(index, size),
                        "floor {floor}, leaf {index} of {size}"
                    );
                }
                for old in 1..=size {
                    assert_eq!(
                        tree.consistency_proof_with(old, size, &mut fetch),
                        whole.consistency_proof(old, size),
                        "floor {floor}, {old} → {size}"
                    );
                }
            }
            assert!(reads > 0, "floor {floor}: nothing read back");
            // Unreadable or altered leaves give no proof rather than a wrong one.
            if 75 >= 2 << floor {
                let mut fail = |_: u64, _: u64| None;
                assert_eq!(tree.inclusion_proof_with(0, 75, &mut fail), None);
                let mut altered = |lo: u64, hi: u64| {
                    let mut read = leaves[lo as usize..hi as usize].to_vec();
                    read[0][0] ^= 1;
                    Some(read)
                };
                assert_eq!(tree.inclusion_proof_with(0, 75, &mut altered), None);
            }
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_no_other_does() {
        let tree = Tree::new(hashes(37));
        let leaves = hashes(37);
        for size in 1..=37 {
            let root = tree.root(size);
            for index in 0..size {
                let proof = tree.inclusion_proof(index, size).unwrap();
                assert!(verify_inclusion(
                    &leaves[index as usize],
                    index,
                    size,
                    &proof,
                    &root
                ));
                assert!(!verify_inclusion(
                    &leaves[(index as usize + 1) % 37],
                    index,
                    size,
                    &proof,
                    &root
                ));
                if size > 1 {
                    assert!(!verify_inclusion(
                        &leaves[index as usize],
                        (index + 1) % size,
                        size,
                        &proof,
                        &root
                    ));
                }
            }
        }
        assert!(tree.inclusion_proof(5, 5).is_none());
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewrite_does_not() {
        let leaves = hashes(40);
        let tree = Tree::new(leaves.clone());
        let mut rewritten = leaves.clone();
        rewritten[3] = [9; 32];
        let other = Tree::new(rewritten);
        for new in 1..=40 {
            for old in 1..=new {
                let proof = tree.consistency_proof(old, new).unwrap();
                assert!(
                    verify_consistency(old, new, &tree.root(old), &tree.root(new), &proof),
                    "{old} -> {new}"
                );
                if old > 3 {
                    // The old checkpoint was of the log before the rewrite.
                    let forged = other.consistency_proof(old, new).unwrap();
                    assert!(!verify_consistency(
                        old,
                        new,
                        &tree.root(old),
                        &other.root(new),
                        &forged
                    ));
                }
            }
        }
    }

    #[test]
    fn the_known_answer_of_the_rfc_shape() {
        // Pinned so that a change to the tree's hashing cannot pass unnoticed.
        let tree = Tree::new(hashes(7));
        let a = |i: usize| leaf_hash(&hashes(7)[i]);
        let expected = node_hash(
            &node_hash(&node_hash(&a(0), &a(1)), &node_hash(&a(2), &a(3))),
            &node_hash(&node_hash(&a(4), &a(5)), &a(6)),
        );
        assert_eq!(tree.root(7), expected);
        assert_eq!(
            tree.inclusion_proof(6, 7).unwrap(),
            vec![node_hash(&a(4), &a(5)), tree.root(4)]
        );
    }
}

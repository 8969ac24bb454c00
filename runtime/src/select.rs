//! Which packed variant runs for a given CPU level.

/// Index of the highest level not above `cap`; the first of equal levels wins. `None` when every
/// packed level is above `cap`.
pub fn highest_at_most(levels: impl Iterator<Item = u32>, cap: u32) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, level) in levels.enumerate() {
        if level <= cap && best.is_none_or(|(_, b)| level > b) {
            best = Some((i, level));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_fitting() {
        let packed = [1, 2, 3, 4];
        assert_eq!(highest_at_most(packed.into_iter(), 4), Some(3));
        assert_eq!(highest_at_most(packed.into_iter(), 3), Some(2));
        assert_eq!(highest_at_most([4, 1, 3].into_iter(), 2), Some(1));
        assert_eq!(highest_at_most([3, 4].into_iter(), 2), None);
        assert_eq!(highest_at_most([1, 3, 3].into_iter(), 4), Some(1));
    }
}

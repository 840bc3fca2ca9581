//! The best one-to-one assignment of a click's characters to the detected boxes: the
//! Hungarian method (Kuhn-Munkres with potentials), O(rows^2 x columns).

/// For every row, a distinct column, so that the sum of `score[row][column]` is the largest.
/// Needs at least as many columns as rows; scores must be finite.
pub fn best_assignment(score: &[Vec<f64>]) -> Vec<usize> {
    let rows = score.len();
    if rows == 0 {
        return Vec::new();
    }
    let columns = score[0].len();
    assert!(rows <= columns, "{rows} rows, {columns} columns");
    assert!(
        score
            .iter()
            .all(|row| row.len() == columns && row.iter().all(|s| s.is_finite())),
        "a full matrix of finite scores"
    );
    // Minimising the cost -score; row and column potentials keep every reduced cost >= 0.
    // Index 0 of the 1-based arrays below is the virtual start of each augmenting path.
    let cost = |row: usize, column: usize| -score[row - 1][column - 1];
    let mut row_potential = vec![0.0; rows + 1];
    let mut column_potential = vec![0.0; columns + 1];
    let mut row_of_column = vec![0usize; columns + 1];
    let mut previous_column = vec![0usize; columns + 1];
    for row in 1..=rows {
        row_of_column[0] = row;
        let mut column = 0;
        let mut slack = vec![f64::INFINITY; columns + 1];
        let mut visited = vec![false; columns + 1];
        // Grow a tree of tight edges until it reaches a free column.
        loop {
            visited[column] = true;
            let from_row = row_of_column[column];
            let mut delta = f64::INFINITY;
            let mut next = 0;
            for j in 1..=columns {
                if visited[j] {
                    continue;
                }
                let reduced = cost(from_row, j) - row_potential[from_row] - column_potential[j];
                if reduced < slack[j] {
                    slack[j] = reduced;
                    previous_column[j] = column;
                }
                if slack[j] < delta {
                    delta = slack[j];
                    next = j;
                }
            }
            for j in 0..=columns {
                if visited[j] {
                    row_potential[row_of_column[j]] += delta;
                    column_potential[j] -= delta;
                } else {
                    slack[j] -= delta;
                }
            }
            column = next;
            if row_of_column[column] == 0 {
                break;
            }
        }
        // Flip the path: every column on it takes the row of the column before it.
        while column != 0 {
            let before = previous_column[column];
            row_of_column[column] = row_of_column[before];
            column = before;
        }
    }
    let mut column_of_row = vec![usize::MAX; rows];
    for column in 1..=columns {
        if row_of_column[column] != 0 {
            column_of_row[row_of_column[column] - 1] = column - 1;
        }
    }
    assert!(
        column_of_row.iter().all(|&c| c < columns),
        "every row assigned"
    );
    column_of_row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every injective assignment, for comparison.
    fn brute_force_best(score: &[Vec<f64>]) -> f64 {
        fn go(score: &[Vec<f64>], row: usize, used: &mut Vec<bool>) -> f64 {
            if row == score.len() {
                return 0.0;
            }
            let mut best = f64::NEG_INFINITY;
            for column in 0..used.len() {
                if !used[column] {
                    used[column] = true;
                    best = best.max(score[row][column] + go(score, row + 1, used));
                    used[column] = false;
                }
            }
            best
        }
        go(score, 0, &mut vec![false; score[0].len()])
    }

    #[test]
    fn finds_the_best_assignment_of_random_matrices() {
        let mut state = 0x853C_49E6_748F_EA9Bu64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 10_000) as f64 / 100.0 - 50.0
        };
        for rows in 1..=5 {
            for columns in rows..=7 {
                for _ in 0..20 {
                    let score: Vec<Vec<f64>> = (0..rows)
                        .map(|_| (0..columns).map(|_| random()).collect())
                        .collect();
                    let assignment = best_assignment(&score);
                    let mut seen = assignment.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    assert_eq!(seen.len(), rows, "distinct columns");
                    let total: f64 = assignment
                        .iter()
                        .enumerate()
                        .map(|(r, &c)| score[r][c])
                        .sum();
                    assert!((total - brute_force_best(&score)).abs() < 1e-9);
                }
            }
        }
        assert!(best_assignment(&[]).is_empty());
    }
}

//! Joining tensors along dimension 0 and splitting them back: the data side of
//! autobatching.

use super::{AlignedBuffer, Tensor, TensorError};

impl Tensor {
    /// Rows along dimension 0 (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape().first().map_or(1, |&rows| rows.max(0) as usize)
    }

    /// Whether `other` can be stacked with this tensor along dimension 0: same dtype,
    /// same rank (at least 1) and the same dimensions after the first.
    pub fn batch_compatible(&self, other: &Tensor) -> bool {
        self.dtype() == other.dtype()
            && !self.shape().is_empty()
            && self.shape().len() == other.shape().len()
            && self.shape()[1..] == other.shape()[1..]
    }

    /// Stacks `parts` along dimension 0; they must be batch-compatible.
    pub fn concat_rows(parts: &[&Tensor]) -> Result<Tensor, TensorError> {
        let Some(first) = parts.first() else {
            return Err(TensorError::InvalidShape);
        };
        if parts.iter().any(|part| !first.batch_compatible(part)) {
            return Err(TensorError::InvalidShape);
        }
        let rows: i64 = parts.iter().map(|part| part.shape()[0]).sum();
        let mut shape = first.shape().to_vec();
        shape[0] = rows;
        let bytes: usize = parts.iter().map(|part| part.data().len()).sum();
        let mut data = AlignedBuffer::zeroed(bytes)?;
        let mut offset = 0;
        for part in parts {
            let len = part.data().len();
            data.as_mut_slice()[offset..offset + len].copy_from_slice(part.data());
            offset += len;
        }
        Tensor::from_buffer(first.dtype(), shape, data)
    }

    /// Splits along dimension 0 into pieces of `rows[i]` rows; the rows must add up to
    /// the first dimension.
    pub fn split_rows(&self, rows: &[usize]) -> Result<Vec<Tensor>, TensorError> {
        if self.shape().is_empty() || rows.iter().sum::<usize>() != self.rows() {
            return Err(TensorError::InvalidShape);
        }
        let per_row: usize = self.shape()[1..]
            .iter()
            .map(|&d| d.max(0) as usize)
            .product();
        let ranges = self.row_byte_ranges(per_row);
        let mut pieces = Vec::with_capacity(rows.len());
        let mut first_row = 0;
        for &count in rows {
            let start = ranges.get(first_row).map_or(self.data().len(), |r| r.0);
            let end = if count == 0 {
                start
            } else {
                ranges[first_row + count - 1].1
            };
            let mut shape = self.shape().to_vec();
            shape[0] = count as i64;
            let data = AlignedBuffer::copy_from(&self.data()[start..end])?;
            pieces.push(Tensor::from_buffer(self.dtype(), shape, data)?);
            first_row += count;
        }
        Ok(pieces)
    }

    /// The byte range of each row.
    fn row_byte_ranges(&self, elements_per_row: usize) -> Vec<(usize, usize)> {
        match self.dtype().element_size() {
            Some(size) => {
                let row_bytes = elements_per_row * size;
                (0..self.rows())
                    .map(|row| (row * row_bytes, (row + 1) * row_bytes))
                    .collect()
            }
            None => {
                // STRING: rows end after every `elements_per_row` NUL terminators.
                let mut ranges = Vec::with_capacity(self.rows());
                let mut start = 0;
                let mut seen = 0;
                for (index, &byte) in self.data().iter().enumerate() {
                    if byte == 0 {
                        seen += 1;
                        if seen == elements_per_row {
                            ranges.push((start, index + 1));
                            start = index + 1;
                            seen = 0;
                        }
                    }
                }
                if elements_per_row == 0 {
                    ranges = vec![(0, 0); self.rows()];
                }
                ranges
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::parse::tensor_from_args;

    fn tensor(text: &str) -> Tensor {
        let args: Vec<&[u8]> = text.split(' ').map(str::as_bytes).collect();
        tensor_from_args(&args).expect("tensor")
    }

    #[test]
    fn concat_and_split_round_trip() {
        let a = tensor("FLOAT 1 2 VALUES 1 2");
        let b = tensor("FLOAT 2 2 VALUES 3 4 5 6");
        let joined = Tensor::concat_rows(&[&a, &b]).expect("concat");
        assert_eq!(joined.shape(), &[3, 2]);
        assert_eq!(joined, tensor("FLOAT 3 2 VALUES 1 2 3 4 5 6"));
        let parts = joined.split_rows(&[1, 2]).expect("split");
        assert_eq!(parts, vec![a, b]);
    }

    #[test]
    fn strings_split_by_elements() {
        let a = tensor("STRING 1 2 VALUES ab c");
        let b = tensor("STRING 1 2 VALUES d efg");
        let joined = Tensor::concat_rows(&[&a, &b]).expect("concat");
        assert_eq!(joined.split_rows(&[1, 1]).expect("split"), vec![a, b]);
    }

    #[test]
    fn incompatible_tensors_are_refused() {
        let a = tensor("FLOAT 1 2");
        for other in ["FLOAT 1 3", "DOUBLE 1 2", "FLOAT 2"] {
            assert!(!a.batch_compatible(&tensor(other)), "{other}");
        }
        assert!(Tensor::concat_rows(&[&a, &tensor("FLOAT 1 3")]).is_err());
        assert!(a.split_rows(&[2]).is_err(), "rows must add up");
    }
}

//! What the split keeps of each record goes to disk, not to memory: external sorts (the `extsort`
//! crate) and sequential tapes in a temporary directory beside the stage's output. Each sort
//! holds at most its budget in memory (`APITUNE_SPILL_MIB`, default 16 MiB), so the split's peak
//! memory is a few budgets however large the corpus is.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use extsort::{ExternalSorter, PushExternalSorter, Sortable, SortedIterator};
use tempfile::TempDir;

use crate::error::DataError;

/// Memory for each external sort's in-memory run, in MiB.
pub const SPILL_BUDGET_ENV: &str = "APITUNE_SPILL_MIB";
const DEFAULT_BUDGET_MIB: usize = 16;

fn budget_bytes() -> usize {
    std::env::var(SPILL_BUDGET_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&mib| mib > 0)
        .unwrap_or(DEFAULT_BUDGET_MIB)
        << 20
}

type Order<T> = fn(&T, &T) -> Ordering;

/// An external sort: items pushed in any order come back in `order`.
pub(super) struct Spill<T: Sortable> {
    sorter: PushExternalSorter<T, Order<T>>,
    dir: TempDir,
    len: u64,
}

impl<T: Sortable> Spill<T> {
    /// A sort whose runs live in a new directory under `parent`; `item_bytes` is what one item
    /// holds in memory (heap included), which sizes the runs to the budget.
    pub(super) fn new(
        parent: &Path,
        item_bytes: usize,
        order: Order<T>,
    ) -> Result<Self, DataError> {
        let dir = tempfile::Builder::new()
            .prefix(".spill-")
            .tempdir_in(parent)
            .map_err(|e| DataError::io(parent, "creating a temporary sort directory", e))?;
        let run = (budget_bytes() / item_bytes.max(1)).max(1024);
        let sorter = ExternalSorter::new()
            .with_segment_size(run)
            .with_sort_dir(dir.path().to_path_buf())
            .pushed_by(order);
        Ok(Self {
            sorter,
            dir,
            len: 0,
        })
    }

    pub(super) fn push(&mut self, item: T) -> Result<(), DataError> {
        self.len += 1;
        self.sorter
            .push(item)
            .map_err(|e| DataError::io(self.dir.path(), "writing a sorted run", e))
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The items in order.
    pub(super) fn sorted(self) -> Result<Sorted<T>, DataError> {
        let path = self.dir.path().to_path_buf();
        let items = self
            .sorter
            .done()
            .map_err(|e| DataError::io(&path, "sorting", e))?;
        Ok(Sorted {
            items,
            _dir: self.dir,
            path,
        })
    }
}

/// A finished sort's items, read back in order; its runs are deleted when it is dropped.
pub(super) struct Sorted<T: Sortable> {
    items: SortedIterator<T, Order<T>>,
    _dir: TempDir,
    path: PathBuf,
}

impl<T: Sortable> Iterator for Sorted<T> {
    type Item = Result<T, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.items.next()?;
        Some(item.map_err(|e| DataError::io(&self.path, "reading a sorted run", e)))
    }
}

/// Items written once in order, to a temporary file, and read back in that order.
pub(super) struct Tape<T: Sortable> {
    writer: BufWriter<File>,
    file: tempfile::NamedTempFile,
    len: u64,
    _items: PhantomData<T>,
}

impl<T: Sortable> Tape<T> {
    pub(super) fn new(parent: &Path) -> Result<Self, DataError> {
        let file = tempfile::Builder::new()
            .prefix(".tape-")
            .tempfile_in(parent)
            .map_err(|e| DataError::io(parent, "creating a temporary file", e))?;
        let handle = file
            .reopen()
            .map_err(|e| DataError::io(file.path(), "opening a temporary file", e))?;
        Ok(Self {
            writer: BufWriter::with_capacity(1 << 20, handle),
            file,
            len: 0,
            _items: PhantomData,
        })
    }

    pub(super) fn push(&mut self, item: &T) -> Result<(), DataError> {
        self.len += 1;
        item.encode(&mut self.writer)
            .map_err(|e| DataError::io(self.file.path(), "writing a temporary file", e))
    }

    /// The finished tape, to be read as often as needed.
    pub(super) fn finish(mut self) -> Result<Recorded<T>, DataError> {
        self.writer
            .flush()
            .map_err(|e| DataError::io(self.file.path(), "writing a temporary file", e))?;
        Ok(Recorded {
            file: self.file,
            len: self.len,
            _items: PhantomData,
        })
    }
}

/// A finished tape; its file is deleted when it is dropped.
pub(super) struct Recorded<T: Sortable> {
    file: tempfile::NamedTempFile,
    len: u64,
    _items: PhantomData<T>,
}

impl<T: Sortable> Recorded<T> {
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The items in the order they were pushed.
    pub(super) fn replay(&self) -> Result<Replay<T>, DataError> {
        let path = self.file.path().to_path_buf();
        let handle = self
            .file
            .reopen()
            .map_err(|e| DataError::io(&path, "opening a temporary file", e))?;
        Ok(Replay {
            reader: BufReader::with_capacity(1 << 20, handle),
            left: self.len,
            path,
            _items: PhantomData,
        })
    }
}

/// A tape's items, read back in order.
pub(super) struct Replay<T: Sortable> {
    reader: BufReader<File>,
    left: u64,
    path: PathBuf,
    _items: PhantomData<T>,
}

impl<T: Sortable> Iterator for Replay<T> {
    type Item = Result<T, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(
            T::decode(&mut self.reader)
                .map_err(|e| DataError::io(&self.path, "reading a temporary file", e)),
        )
    }
}

/// Little-endian fixed-width fields and length-prefixed strings, for `Sortable` impls.
pub(super) mod codec {
    use std::io::{Read, Result, Write};

    pub(crate) fn put<W: Write, const N: usize>(out: &mut W, bytes: [u8; N]) -> Result<()> {
        out.write_all(&bytes)
    }

    pub(crate) fn get<R: Read, const N: usize>(input: &mut R) -> Result<[u8; N]> {
        let mut bytes = [0u8; N];
        input.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    pub(crate) fn put_str<W: Write>(out: &mut W, text: &str) -> Result<()> {
        put(out, (text.len() as u64).to_le_bytes())?;
        out.write_all(text.as_bytes())
    }

    pub(crate) fn get_str<R: Read>(input: &mut R) -> Result<String> {
        let len = u64::from_le_bytes(get(input)?) as usize;
        let mut bytes = vec![0u8; len];
        input.read_exact(&mut bytes)?;
        String::from_utf8(bytes).map_err(std::io::Error::other)
    }

    pub(crate) fn put_opt_str<W: Write>(out: &mut W, text: Option<&str>) -> Result<()> {
        match text {
            None => put(out, [0u8]),
            Some(text) => {
                put(out, [1u8])?;
                put_str(out, text)
            }
        }
    }

    pub(crate) fn get_opt_str<R: Read>(input: &mut R) -> Result<Option<String>> {
        let [present] = get::<_, 1>(input)?;
        Ok(match present {
            0 => None,
            _ => Some(get_str(input)?),
        })
    }

    /// A vector of counts, length-prefixed.
    pub(crate) fn put_counts<W: Write>(out: &mut W, counts: &[u64]) -> Result<()> {
        put(out, (counts.len() as u32).to_le_bytes())?;
        counts.iter().try_for_each(|n| put(out, n.to_le_bytes()))
    }

    pub(crate) fn get_counts<R: Read>(input: &mut R) -> Result<Vec<u64>> {
        let len = u32::from_le_bytes(get(input)?) as usize;
        (0..len)
            .map(|_| Ok(u64::from_le_bytes(get(input)?)))
            .collect()
    }
}

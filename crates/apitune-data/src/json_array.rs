//! Streaming reader for a file holding ONE JSON array (API Pack's 300-400 MB files).
//!
//! serde_json's `StreamDeserializer` reads concatenated values, not the elements of one array, and
//! deserialising the whole array needs the whole file in memory. This reader scans the array's
//! structure (strings, escapes, bracket depth) over a `BufRead`, copies one element at a time into
//! a reused buffer and hands it to a sink, so memory stays flat in the file size and a malformed
//! element is reported (and can be skipped) on its own, with its index and byte offset. Validating
//! the element's JSON is left to the sink (`serde_json::from_slice`).

use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::Path;

use super::error::DataError;

/// Elements larger than this are refused: no API record is that big, and a file that is not an
/// array of records (say, one huge nested value) would otherwise be buffered whole.
pub const DEFAULT_MAX_ELEMENT_BYTES: usize = 64 << 20;

/// One array element as raw JSON bytes.
#[derive(Debug)]
pub struct ArrayElement<'a> {
    /// 0-based position in the array.
    pub index: u64,
    /// Byte offset of the element's first byte in the file.
    pub byte_offset: u64,
    pub bytes: &'a [u8],
}

const UTF8_BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    BeforeArray,
    AfterOpen,
    InElement,
    AfterElement,
    AfterComma,
    Done,
}

#[derive(Default)]
struct ElementScan {
    depth: u64,
    in_string: bool,
    escaped: bool,
}

/// Calls `sink` for every element of the JSON array in `reader`, in order. `sink` may stop early
/// with `ControlFlow::Break`. Errors name `path`, the element index and the byte offset.
pub fn for_each_array_element<R, F>(
    mut reader: R,
    path: &Path,
    max_element_bytes: usize,
    mut sink: F,
) -> Result<(), DataError>
where
    R: BufRead,
    F: FnMut(ArrayElement<'_>) -> Result<ControlFlow<()>, DataError>,
{
    let mut scanner = ArrayScanner {
        path,
        max_element_bytes,
        state: State::BeforeArray,
        element: Vec::new(),
        element_start: 0,
        index: 0,
        bom_matched: 0,
        scan: ElementScan::default(),
    };
    let mut offset: u64 = 0;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(DataError::io(path, "reading JSON array", err)),
        };
        if chunk.is_empty() {
            return scanner.finish(&mut sink);
        }
        let chunk_len = chunk.len();
        if scanner.feed(chunk, offset, &mut sink)?.is_break() {
            return Ok(());
        }
        offset += chunk_len as u64;
        reader.consume(chunk_len);
    }
}

/// The array's structure seen so far, fed one chunk at a time.
struct ArrayScanner<'p> {
    path: &'p Path,
    max_element_bytes: usize,
    state: State,
    /// The current element's bytes (it may span chunks).
    element: Vec<u8>,
    element_start: u64,
    index: u64,
    /// How many bytes of a UTF-8 byte order mark were seen at the start.
    bom_matched: u64,
    scan: ElementScan,
}

/// What [`ArrayScanner::step`] did with a byte outside elements.
enum Step {
    Consumed,
    /// The byte is the first of an element; it is scanned as part of it.
    ElementStarts,
}

impl ArrayScanner<'_> {
    fn bad_file(&self, message: String) -> DataError {
        DataError::BadFile {
            path: self.path.to_path_buf(),
            message,
        }
    }

    /// Scans `chunk`, which starts at byte `offset` of the file, handing each element that ends
    /// in it to `sink`.
    fn feed<F>(
        &mut self,
        chunk: &[u8],
        offset: u64,
        sink: &mut F,
    ) -> Result<ControlFlow<()>, DataError>
    where
        F: FnMut(ArrayElement<'_>) -> Result<ControlFlow<()>, DataError>,
    {
        let mut i = 0;
        // Start of the current element's bytes inside this chunk.
        let mut segment_start = 0;
        while i < chunk.len() {
            if self.state != State::InElement {
                match self.step(chunk[i], offset + i as u64)? {
                    Step::Consumed => i += 1,
                    Step::ElementStarts => {
                        self.state = State::InElement;
                        self.element.clear();
                        self.element_start = offset + i as u64;
                        self.scan = ElementScan::default();
                        segment_start = i;
                    }
                }
                continue;
            }
            let end = self.scan_element(chunk, &mut i);
            self.append(&chunk[segment_start..end.unwrap_or(chunk.len())])?;
            if let Some(end) = end {
                i = end;
                let flow = sink(ArrayElement {
                    index: self.index,
                    byte_offset: self.element_start,
                    bytes: &self.element,
                })?;
                self.index += 1;
                self.state = State::AfterElement;
                if flow.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// One byte at file offset `at`, outside any element.
    fn step(&mut self, byte: u8, at: u64) -> Result<Step, DataError> {
        match self.state {
            State::BeforeArray => self.before_array(byte, at)?,
            State::AfterOpen | State::AfterComma => match byte {
                b if b.is_ascii_whitespace() => {}
                b']' if self.state == State::AfterOpen => self.state = State::Done,
                b']' | b',' => {
                    return Err(self.bad_file(format!(
                        "expected record {} at byte offset {at}, found {}",
                        self.index,
                        describe_byte(byte)
                    )));
                }
                _ => return Ok(Step::ElementStarts),
            },
            State::AfterElement => match byte {
                b',' => self.state = State::AfterComma,
                b']' => self.state = State::Done,
                b if b.is_ascii_whitespace() => {}
                b => {
                    return Err(self.bad_file(format!(
                        "after record {} expected `,` or `]` at byte offset {at}, found {}",
                        self.index.saturating_sub(1),
                        describe_byte(b)
                    )));
                }
            },
            State::Done | State::InElement => {
                if !byte.is_ascii_whitespace() {
                    return Err(self.bad_file(format!(
                        "unexpected {} at byte offset {at} after the end of the array",
                        describe_byte(byte)
                    )));
                }
            }
        }
        Ok(Step::Consumed)
    }

    /// Before the `[`: whitespace and a UTF-8 byte order mark (possibly split across chunks).
    fn before_array(&mut self, byte: u8, at: u64) -> Result<(), DataError> {
        if at < 3 && self.bom_matched == at && byte == UTF8_BOM[at as usize] {
            self.bom_matched += 1;
            return Ok(());
        }
        match byte {
            b'[' => self.state = State::AfterOpen,
            b if b.is_ascii_whitespace() => {}
            b => {
                return Err(self.bad_file(format!(
                    "expected a JSON array (`[`) at byte offset {at}, found {}; API Pack files are one JSON array each (use `jsonl` for one record per line)",
                    describe_byte(b)
                )));
            }
        }
        Ok(())
    }

    /// Scans element bytes from `chunk[*i..]`. Returns where the element ends in this chunk
    /// (past its closing byte, or at the separator after a scalar), or `None` when it goes on.
    fn scan_element(&mut self, chunk: &[u8], i: &mut usize) -> Option<usize> {
        let scan = &mut self.scan;
        while *i < chunk.len() {
            let b = chunk[*i];
            *i += 1;
            if scan.in_string {
                if scan.escaped {
                    scan.escaped = false;
                } else if b == b'\\' {
                    scan.escaped = true;
                } else if b == b'"' {
                    scan.in_string = false;
                    if scan.depth == 0 {
                        return Some(*i);
                    }
                }
                continue;
            }
            match b {
                b'"' => scan.in_string = true,
                b'{' | b'[' => scan.depth += 1,
                b'}' | b']' if scan.depth > 0 => {
                    scan.depth -= 1;
                    if scan.depth == 0 {
                        return Some(*i);
                    }
                }
                b',' | b']' | b'}' if scan.depth == 0 => return Some(*i - 1),
                b if b.is_ascii_whitespace() && scan.depth == 0 => return Some(*i - 1),
                _ => {}
            }
        }
        None
    }

    /// Adds `segment` to the current element, refusing elements over the size limit.
    fn append(&mut self, segment: &[u8]) -> Result<(), DataError> {
        if self.element.len() + segment.len() > self.max_element_bytes {
            return Err(self.bad_file(format!(
                "record {} (starting at byte offset {}) is larger than {} bytes; this does not look like an array of API records",
                self.index, self.element_start, self.max_element_bytes
            )));
        }
        self.element.extend_from_slice(segment);
        Ok(())
    }

    /// At the end of the file: fine after the `]`, otherwise an error saying where it stopped.
    fn finish<F>(&self, sink: &mut F) -> Result<(), DataError>
    where
        F: FnMut(ArrayElement<'_>) -> Result<ControlFlow<()>, DataError>,
    {
        let (index, element_start) = (self.index, self.element_start);
        match self.state {
            State::Done => Ok(()),
            State::BeforeArray => Err(self.bad_file("empty file: expected a JSON array".to_string())),
            State::InElement if self.scan.depth == 0 && !self.scan.in_string => {
                // A scalar element running into EOF; report it to the sink first for a precise error.
                let _ = sink(ArrayElement {
                    index,
                    byte_offset: element_start,
                    bytes: &self.element,
                })?;
                Err(self.bad_file(format!(
                    "file ends after record {index} without closing the array (`]`); it looks truncated"
                )))
            }
            State::InElement => Err(self.bad_file(format!(
                "file ends inside record {index} (which starts at byte offset {element_start}); it looks truncated"
            ))),
            State::AfterOpen | State::AfterElement | State::AfterComma => Err(self.bad_file(format!(
                "file ends after {index} records without closing the array (`]`); it looks truncated"
            ))),
        }
    }
}

fn describe_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("`{}`", byte as char)
    } else {
        format!("byte 0x{byte:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn elements(input: &[u8], buffer: usize) -> Result<Vec<(u64, u64, String)>, DataError> {
        let mut out = Vec::new();
        for_each_array_element(
            BufReader::with_capacity(buffer, input),
            Path::new("t.json"),
            1 << 20,
            |e| {
                out.push((
                    e.index,
                    e.byte_offset,
                    String::from_utf8_lossy(e.bytes).into_owned(),
                ));
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(out)
    }

    #[test]
    fn splits_elements_across_tiny_buffers() {
        let input = br#" [ {"a": "x,]}\"y"}, [1, [2]] ,"s\\", 12 , null ] "#;
        for buffer in [1, 2, 3, 7, 64] {
            let got = elements(input, buffer).unwrap();
            let texts: Vec<&str> = got.iter().map(|(_, _, t)| t.as_str()).collect();
            assert_eq!(
                texts,
                [r#"{"a": "x,]}\"y"}"#, "[1, [2]]", r#""s\\""#, "12", "null"]
            );
            assert_eq!(got[0].1, 3);
        }
    }

    #[test]
    fn empty_array_and_bom() {
        assert!(elements(b"\xEF\xBB\xBF[ ]", 2).unwrap().is_empty());
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let err = elements(br#"[{"a": 1}, {"b": "#, 4)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.json")
                && err.contains("inside record 1")
                && err.contains("byte offset 11"),
            "{err}"
        );
        let err = elements(br#"{"a": 1}"#, 4).unwrap_err().to_string();
        assert!(err.contains("expected a JSON array"), "{err}");
        let err = elements(br#"[{"a": 1} {"b": 2}]"#, 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected `,` or `]`"), "{err}");
        let err = elements(br#"[1,]"#, 4).unwrap_err().to_string();
        assert!(err.contains("expected record 1"), "{err}");
        let err = elements(br#"[1] x"#, 4).unwrap_err().to_string();
        assert!(err.contains("after the end"), "{err}");
        assert!(elements(b"", 4).is_err());
        assert!(elements(b"[1, 2", 4).is_err());
    }
}

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
    let bad_file = |message: String| DataError::BadFile {
        path: path.to_path_buf(),
        message,
    };
    let mut state = State::BeforeArray;
    let mut offset: u64 = 0;
    let mut element: Vec<u8> = Vec::new();
    let mut element_start: u64 = 0;
    let mut index: u64 = 0;
    let mut bom_matched: u64 = 0;
    let mut scan = ElementScan {
        depth: 0,
        in_string: false,
        escaped: false,
    };

    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(DataError::io(path, "reading JSON array", err)),
        };
        if chunk.is_empty() {
            break;
        }
        let chunk_len = chunk.len();
        let mut i = 0;
        // Start of the current element's bytes inside this chunk.
        let mut segment_start = 0;
        while i < chunk_len {
            let byte = chunk[i];
            match state {
                State::BeforeArray => {
                    // A UTF-8 byte order mark, possibly split across chunks.
                    let position = offset + i as u64;
                    if position < 3
                        && bom_matched == position
                        && byte == UTF8_BOM[position as usize]
                    {
                        bom_matched += 1;
                        i += 1;
                        continue;
                    }
                    match byte {
                        b'[' => state = State::AfterOpen,
                        b if b.is_ascii_whitespace() => {}
                        b => {
                            return Err(bad_file(format!(
                                "expected a JSON array (`[`) at byte offset {}, found {}; API Pack files are one JSON array each (use `jsonl` for one record per line)",
                                offset + i as u64,
                                describe_byte(b)
                            )));
                        }
                    }
                    i += 1;
                }
                State::AfterOpen | State::AfterComma => {
                    match byte {
                        b if b.is_ascii_whitespace() => i += 1,
                        b']' if state == State::AfterOpen => {
                            state = State::Done;
                            i += 1;
                        }
                        b']' | b',' => {
                            return Err(bad_file(format!(
                                "expected record {index} at byte offset {}, found {}",
                                offset + i as u64,
                                describe_byte(byte)
                            )));
                        }
                        _ => {
                            state = State::InElement;
                            element.clear();
                            element_start = offset + i as u64;
                            segment_start = i;
                            scan = ElementScan {
                                depth: 0,
                                in_string: false,
                                escaped: false,
                            };
                            // Do not advance: the element's first byte is scanned below.
                        }
                    }
                }
                State::InElement => {
                    // Scan until the element ends or the chunk runs out.
                    let mut end_here: Option<(usize, bool)> = None; // (end index exclusive, byte consumed)
                    while i < chunk_len {
                        let b = chunk[i];
                        if scan.in_string {
                            if scan.escaped {
                                scan.escaped = false;
                            } else if b == b'\\' {
                                scan.escaped = true;
                            } else if b == b'"' {
                                scan.in_string = false;
                                if scan.depth == 0 {
                                    end_here = Some((i + 1, true));
                                    break;
                                }
                            }
                            i += 1;
                            continue;
                        }
                        match b {
                            b'"' => scan.in_string = true,
                            b'{' | b'[' => scan.depth += 1,
                            b'}' | b']' if scan.depth > 0 => {
                                scan.depth -= 1;
                                if scan.depth == 0 {
                                    end_here = Some((i + 1, true));
                                    break;
                                }
                            }
                            b',' | b']' | b'}' if scan.depth == 0 => {
                                end_here = Some((i, false));
                                break;
                            }
                            b if b.is_ascii_whitespace() && scan.depth == 0 => {
                                end_here = Some((i, false));
                                break;
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    let segment_end = end_here.map_or(chunk_len, |(end, _)| end);
                    if element.len() + (segment_end - segment_start) > max_element_bytes {
                        return Err(bad_file(format!(
                            "record {index} (starting at byte offset {element_start}) is larger than {max_element_bytes} bytes; this does not look like an array of API records"
                        )));
                    }
                    element.extend_from_slice(&chunk[segment_start..segment_end]);
                    if let Some((end, consumed)) = end_here {
                        // `end` is past the closing byte, or at the separator for scalars.
                        let _ = consumed;
                        i = end;
                        let flow = sink(ArrayElement {
                            index,
                            byte_offset: element_start,
                            bytes: &element,
                        })?;
                        index += 1;
                        state = State::AfterElement;
                        if flow.is_break() {
                            return Ok(());
                        }
                    }
                }
                State::AfterElement => {
                    match byte {
                        b',' => state = State::AfterComma,
                        b']' => state = State::Done,
                        b if b.is_ascii_whitespace() => {}
                        b => {
                            return Err(bad_file(format!(
                                "after record {} expected `,` or `]` at byte offset {}, found {}",
                                index.saturating_sub(1),
                                offset + i as u64,
                                describe_byte(b)
                            )));
                        }
                    }
                    i += 1;
                }
                State::Done => {
                    if !byte.is_ascii_whitespace() {
                        return Err(bad_file(format!(
                            "unexpected {} at byte offset {} after the end of the array",
                            describe_byte(byte),
                            offset + i as u64
                        )));
                    }
                    i += 1;
                }
            }
        }
        offset += chunk_len as u64;
        reader.consume(chunk_len);
    }

    match state {
        State::Done => Ok(()),
        State::BeforeArray => Err(bad_file("empty file: expected a JSON array".to_string())),
        State::InElement if scan.depth == 0 && !scan.in_string => {
            // A scalar element running into EOF; report it to the sink first for a precise error.
            let _ = sink(ArrayElement {
                index,
                byte_offset: element_start,
                bytes: &element,
            })?;
            Err(bad_file(format!(
                "file ends after record {index} without closing the array (`]`); it looks truncated"
            )))
        }
        State::InElement => Err(bad_file(format!(
            "file ends inside record {index} (which starts at byte offset {element_start}); it looks truncated"
        ))),
        State::AfterOpen | State::AfterElement | State::AfterComma => Err(bad_file(format!(
            "file ends after {index} records without closing the array (`]`); it looks truncated"
        ))),
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

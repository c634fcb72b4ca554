//! The stdout sink (`--sink stdout`): one JSON event per line.
//!
//! For trying kinesync without AWS and for measuring the producer's own
//! speed. A record counts as accepted once its line is written and stdout is
//! flushed; whoever reads the pipe owns durability from there.

use std::io::Write;

use super::{OutRecord, PutError, RecordResult, RecordWriter, SinkError};

/// Writes each record's data followed by `\n` to the process's stdout.
#[derive(Debug, Clone, Default)]
pub struct StdoutWriter;

impl RecordWriter for StdoutWriter {
    fn put_records(
        &self,
        records: &[OutRecord],
    ) -> impl std::future::Future<Output = Result<Vec<RecordResult>, PutError>> + Send {
        let result = write_lines(&mut std::io::stdout().lock(), records);
        async move { result }
    }
}

fn write_lines(out: &mut impl Write, records: &[OutRecord]) -> Result<Vec<RecordResult>, PutError> {
    let io = |e: std::io::Error| {
        PutError::Fatal(SinkError::Io {
            target: "stdout".into(),
            detail: e.to_string(),
        })
    };
    // One write per batch: stdout is line-buffered, so writing record by
    // record cost one write(2) per event.
    let mut lines = Vec::with_capacity(records.iter().map(|r| r.data.len() + 1).sum());
    for r in records {
        lines.extend_from_slice(&r.data);
        lines.push(b'\n');
    }
    out.write_all(&lines).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(vec![RecordResult::Accepted; records.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_record() {
        let mut buf = Vec::new();
        let recs = vec![
            OutRecord {
                seq: 1,
                partition_key: "k".into(),
                data: b"{\"a\":1}".to_vec(),
                ordered: true,
            },
            OutRecord {
                seq: 2,
                partition_key: "k".into(),
                data: b"{\"a\":2}".to_vec(),
                ordered: true,
            },
        ];
        let results = write_lines(&mut buf, &recs).unwrap();
        assert_eq!(
            results,
            vec![RecordResult::Accepted, RecordResult::Accepted]
        );
        assert_eq!(buf, b"{\"a\":1}\n{\"a\":2}\n");
    }
}

use std::io::Write;

use super::*;

fn settings() -> FollowConfig {
    FollowConfig {
        poll_interval: Duration::from_millis(10),
        rotate_wait: Duration::from_millis(150),
    }
}

fn source(pattern: &Path) -> FollowSource {
    FollowSource::new(pattern.to_owned(), 3, settings(), Arc::default())
}

/// What a run of the source gave: lines in order, and the checkpoint's view of positions.
#[derive(Default)]
struct Seen {
    lines: Vec<String>,
    position: SourcePosition,
    ended: Vec<String>,
}

impl Seen {
    /// Read until `done` holds (or 10 s pass), keeping positions as the writer does.
    fn read(&mut self, source: &mut FollowSource, done: impl Fn(&Seen) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "gave up with {:?}",
                self.lines
            );
            let chunk = source.next_chunk().expect("read").expect("chunk");
            let mut from = 0;
            for &end in &chunk.ends {
                self.lines
                    .push(String::from_utf8(chunk.data[from..end - 1].to_vec()).expect("utf8"));
                from = end;
            }
            if let Some((key, value)) = chunk.position {
                self.position.partitions.insert(key.to_string(), value);
            }
            for key in &chunk.retired {
                self.position.partitions.remove(&**key);
            }
            for e in chunk.events {
                if let PartitionEvent::Ended(name) = e {
                    self.ended.push(name.to_string());
                }
            }
            self.position.next_seq = chunk.seq + 1;
        }
    }
}

fn has(n: usize) -> impl Fn(&Seen) -> bool {
    move |s| s.lines.len() >= n
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("write");
}

fn lines(from: usize, to: usize, tag: &str) -> String {
    (from..=to)
        .map(|i| format!("{{\"n\":{i},\"f\":\"{tag}\"}}\n"))
        .collect()
}

fn expected(from: usize, to: usize, tag: &str) -> Vec<String> {
    lines(from, to, tag).lines().map(str::to_owned).collect()
}

#[test]
fn appended_lines_and_new_files_are_read_and_a_partial_line_waits_for_its_break() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = tmp.path().join("a.log");
    append(&a, &lines(1, 4, "a"));
    let mut src = source(tmp.path());
    let mut seen = Seen::default();
    seen.read(&mut src, has(4));
    append(&a, "{\"n\":5,\"f\":\"a\"}\n{\"n\":6,");
    std::fs::write(tmp.path().join("b.log"), lines(1, 2, "b")).expect("b");
    seen.read(&mut src, has(7));
    // Another look: nothing more, the half-written line waits.
    let chunk = src.next_chunk().expect("read").expect("chunk");
    assert!(chunk.ends.is_empty(), "{:?}", String::from_utf8_lossy(&chunk.data));
    append(&a, "\"f\":\"a\"}\n");
    seen.read(&mut src, has(8));
    let mut want = expected(1, 6, "a");
    want.extend(expected(1, 2, "b"));
    let mut got = seen.lines.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(src.backlog() == Some(0));
}

#[test]
fn rename_rotation_reads_the_renamed_file_to_its_end_then_the_new_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("app.log");
    let mut writer = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open");
    writer.write_all(lines(1, 5, "old").as_bytes()).expect("write");
    let mut src = source(&path);
    let mut seen = Seen::default();
    seen.read(&mut src, has(5));
    // logrotate's default: rename, then the application writes its last lines to the file
    // it has open before opening a new one at the path.
    std::fs::rename(&path, tmp.path().join("app.log.1")).expect("rename");
    writer.write_all(lines(6, 9, "old").as_bytes()).expect("write");
    writer
        .write_all(b"{\"n\":10,\"f\":\"old\"}")
        .expect("a last line with no break");
    drop(writer);
    append(&path, &lines(1, 3, "new"));
    seen.read(&mut src, |s| s.lines.len() >= 13 && !s.ended.is_empty());
    let mut want = expected(1, 10, "old");
    want.extend(expected(1, 3, "new"));
    let mut got = seen.lines.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every line once");
    assert_eq!(seen.ended.len(), 1, "the renamed file is closed once quiet");
    assert_eq!(seen.position.partitions.len(), 1, "and leaves the checkpoint");
}

#[test]
fn copytruncate_goes_on_in_the_copy_from_where_reading_stood() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("app.log");
    append(&path, &lines(1, 5, "x"));
    let mut src = source(&tmp.path().join("app.log*"));
    let mut seen = Seen::default();
    seen.read(&mut src, has(5));
    // Written, not read yet, when logrotate copies the file and truncates it.
    append(&path, &lines(6, 8, "x"));
    std::fs::copy(&path, tmp.path().join("app.log.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&path, &lines(1, 2, "after"));
    seen.read(&mut src, has(10));
    // A quiet while: nothing else comes (the copy is not read again from its start).
    let until = Instant::now() + Duration::from_millis(400);
    seen.read(&mut src, |_| Instant::now() >= until);
    let mut want = expected(1, 8, "x");
    want.extend(expected(1, 2, "after"));
    let mut got = seen.lines.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every line once");
}

#[test]
fn a_copy_listed_after_a_truncation_the_scan_has_not_seen_yet_is_not_a_file_of_its_own() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("app.log");
    append(&path, &lines(1, 5, "x"));
    let mut src = source(&tmp.path().join("app.log*"));
    let mut seen = Seen::default();
    seen.read(&mut src, has(5));
    // logrotate copies and truncates, and the application writes its next line, after a scan
    // looked at app.log (so it is still followed as it was) and before that scan lists the
    // copy: on a busy machine a scan can take that long.
    append(&path, &lines(6, 8, "x"));
    let copy = tmp.path().join("app.log.1");
    std::fs::copy(&path, &copy).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&path, &lines(1, 1, "after"));
    let file = File::open(&copy).expect("open the copy");
    let meta = file.metadata().expect("metadata");
    let candidate = Candidate {
        head: digest(&first_line(&file).expect("read").expect("a first line")),
        path: copy,
        inode: (meta.dev(), meta.ino()),
        size: meta.len(),
        file,
    };
    let found = src.identify(&candidate).expect("identify");
    assert!(
        matches!(found, Found::Copy),
        "the copy holds what was read: not a new file, read again from its start"
    );
    // The next scan sees the truncation and goes on in the copy.
    append(&path, &lines(2, 3, "after"));
    seen.read(&mut src, has(11));
    let until = Instant::now() + Duration::from_millis(400);
    seen.read(&mut src, |_| Instant::now() >= until);
    let mut want = expected(1, 8, "x");
    want.extend(expected(1, 3, "after"));
    let mut got = seen.lines.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every line once");
}

#[test]
fn a_file_copytruncated_after_it_was_found_and_before_it_was_read_is_read_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("app.log");
    append(&path, &lines(1, 5, "x"));
    let mut src = source(&tmp.path().join("app.log*"));
    // A scan finds app.log by its first line; before a line of it is read, logrotate copies
    // and truncates it, and the application writes on.
    src.scan().expect("scan");
    std::fs::copy(&path, tmp.path().join("app.log.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&path, &lines(1, 3, "after"));
    let mut seen = Seen::default();
    seen.read(&mut src, has(8));
    let until = Instant::now() + Duration::from_millis(400);
    seen.read(&mut src, |_| Instant::now() >= until);
    let mut want = expected(1, 5, "x");
    want.extend(expected(1, 3, "after"));
    let mut got = seen.lines.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every line once");
}

#[test]
fn a_restart_finds_each_file_by_its_content_wherever_it_moved() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = tmp.path().join("a.log");
    let b = tmp.path().join("b.log");
    append(&a, &lines(1, 4, "a"));
    append(&b, &lines(1, 2, "b"));
    let mut seen = Seen::default();
    {
        let mut first = source(tmp.path());
        seen.read(&mut first, has(6));
    }
    // While sluice is down: a is rotated by renaming (and grows), b grows, a new a.log.
    std::fs::rename(&a, tmp.path().join("a.log.1")).expect("rename");
    append(&tmp.path().join("a.log.1"), &lines(5, 6, "a"));
    append(&b, &lines(3, 3, "b"));
    append(&a, &lines(1, 1, "new"));
    let mut again = source(tmp.path());
    again.resume(&seen.position.clone()).expect("resume");
    let mut after = Seen {
        position: seen.position.clone(),
        ..Seen::default()
    };
    after.read(&mut again, has(4));
    let until = Instant::now() + Duration::from_millis(300);
    after.read(&mut again, |_| Instant::now() >= until);
    let mut got = after.lines.clone();
    got.sort();
    let mut want = expected(5, 6, "a");
    want.extend(expected(3, 3, "b"));
    want.extend(expected(1, 1, "new"));
    want.sort();
    assert_eq!(got, want, "only what came while down");
}

#[test]
fn files_that_start_alike_are_different_files_but_a_copy_is_not_read_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let header = "{\"boot\":true}\n";
    std::fs::write(tmp.path().join("a.log"), format!("{header}{}", lines(1, 3, "a"))).expect("a");
    std::fs::write(tmp.path().join("b.log"), format!("{header}{}", lines(1, 2, "b"))).expect("b");
    let mut src = source(tmp.path());
    let mut seen = Seen::default();
    seen.read(&mut src, has(7));
    std::fs::copy(tmp.path().join("a.log"), tmp.path().join("c.log")).expect("copy");
    let until = Instant::now() + Duration::from_millis(300);
    seen.read(&mut src, |_| Instant::now() >= until);
    assert_eq!(seen.lines.len(), 7, "{:?}", seen.lines);
    assert_eq!(seen.lines.iter().filter(|l| l.contains("boot")).count(), 2);
}

#[test]
fn a_stop_ends_reading() {
    let tmp = tempfile::tempdir().expect("tmp");
    let stop = Arc::new(AtomicBool::new(false));
    let mut src = FollowSource::new(tmp.path().to_owned(), 3, settings(), stop.clone());
    assert!(src.next_chunk().expect("read").is_some(), "an idle tick");
    stop.store(true, Ordering::SeqCst);
    assert!(src.next_chunk().expect("read").is_none());
    assert!(!src.bounded());
}

#[test]
fn a_file_rewritten_past_the_offset_between_two_looks_is_read_again_from_its_start() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("app.log");
    let header = "{\"header\":true}\n";
    std::fs::write(&path, format!("{header}{}", lines(1, 3, "old"))).expect("write");
    let mut src = source(&path);
    let mut seen = Seen::default();
    seen.read(&mut src, has(4));
    // Truncated and written again, longer than before, with the same first line, between
    // two looks: only the bytes before the offset tell.
    std::fs::write(&path, format!("{header}{}", lines(1, 6, "new"))).expect("rewrite");
    seen.read(&mut src, has(11));
    let mut want = vec![header.trim_end().to_owned()];
    want.extend(expected(1, 3, "old"));
    want.push(header.trim_end().to_owned());
    want.extend(expected(1, 6, "new"));
    assert_eq!(seen.lines, want);
}

#[test]
fn compressed_rotated_files_are_not_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    append(&tmp.path().join("app.log"), &lines(1, 2, "a"));
    std::fs::write(
        tmp.path().join("app.log.2.gz"),
        [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, b'\n', 1, 2],
    )
    .expect("gz");
    let mut src = source(tmp.path());
    let mut seen = Seen::default();
    seen.read(&mut src, has(2));
    let until = Instant::now() + Duration::from_millis(300);
    seen.read(&mut src, |_| Instant::now() >= until);
    assert_eq!(seen.lines, expected(1, 2, "a"));
}

//! The manifest of a multi-part append-only file, as Redis 7 writes it: one
//! line per file, the base first, then old files awaiting deletion
//! (history), then the incremental files in the order they were written.
//!
//! ```text
//! file appendonly.aof.2.base.aof seq 2 type b
//! file appendonly.aof.1.incr.aof seq 1 type h
//! file appendonly.aof.2.incr.aof seq 2 type i
//! ```
//!
//! Loading replays the base, then every incremental file. Redis names its
//! base `.base.rdb` (an RDB snapshot); ours is a command stream, so it is
//! `.base.aof`, the name Redis uses with `aof-use-rdb-preamble no`.

use std::fmt::Write as _;

/// What a file of the manifest holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The keyspace at the last rewrite.
    Base,
    /// Writes after the base, in order.
    Incr,
    /// Replaced by a rewrite; deleted once the new manifest is on disk.
    History,
}

impl FileKind {
    fn letter(self) -> char {
        match self {
            FileKind::Base => 'b',
            FileKind::Incr => 'i',
            FileKind::History => 'h',
        }
    }
}

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFile {
    pub name: String,
    pub seq: u64,
    pub kind: FileKind,
}

/// The files that make up an append-only file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<AofFile>,
    pub incrs: Vec<AofFile>,
    pub history: Vec<AofFile>,
    /// The highest base and incremental sequence numbers handed out, so a
    /// new file never takes an old one's name.
    base_seq: u64,
    incr_seq: u64,
}

/// `<filename>.manifest`.
pub fn manifest_name(filename: &str) -> String {
    format!("{filename}.manifest")
}

fn base_name(filename: &str, seq: u64) -> String {
    format!("{filename}.{seq}.base.aof")
}

fn incr_name(filename: &str, seq: u64) -> String {
    format!("{filename}.{seq}.incr.aof")
}

impl Manifest {
    /// Reads a manifest; `#` lines are comments, unknown keys are ignored
    /// (as Redis does, so later versions can add some).
    ///
    /// # Errors
    /// What is wrong, with the line number.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() % 2 != 0 {
                return Err(bad("invalid AOF manifest file format"));
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            for pair in words.chunks(2) {
                if let [key, value] = pair {
                    match *key {
                        "file" => name = Some(value.trim_matches('"').to_string()),
                        "seq" => seq = value.parse::<u64>().ok(),
                        "type" => {
                            kind = match *value {
                                "b" => Some(FileKind::Base),
                                "i" => Some(FileKind::Incr),
                                "h" => Some(FileKind::History),
                                _ => None,
                            }
                        }
                        _ => {}
                    }
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err(bad("invalid AOF manifest file format"));
            };
            if name.is_empty() || name.contains('/') {
                return Err(bad("a file name must be a plain name"));
            }
            let file = AofFile { name, seq, kind };
            match kind {
                FileKind::Base => {
                    if m.base.is_some() {
                        return Err(bad("found duplicate base file information"));
                    }
                    m.base_seq = m.base_seq.max(seq);
                    m.base = Some(file);
                }
                FileKind::Incr => {
                    if m.incrs.last().is_some_and(|last| seq <= last.seq) {
                        return Err(bad("found a non-monotonic sequence number"));
                    }
                    m.incr_seq = m.incr_seq.max(seq);
                    m.incrs.push(file);
                }
                FileKind::History => {
                    // Not deleted yet: a new file must not take its name.
                    if file.name.ends_with(".incr.aof") {
                        m.incr_seq = m.incr_seq.max(seq);
                    } else {
                        m.base_seq = m.base_seq.max(seq);
                    }
                    m.history.push(file);
                }
            }
        }
        Ok(m)
    }

    /// The manifest as text: base, history, incremental files.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let files = self.base.iter().chain(&self.history).chain(&self.incrs);
        for f in files {
            let _ = writeln!(
                out,
                "file {} seq {} type {}",
                f.name,
                f.seq,
                f.kind.letter()
            );
        }
        out
    }

    /// The files to replay, in order: the base, then the incremental files.
    pub fn replay_order(&self) -> impl Iterator<Item = &AofFile> {
        self.base.iter().chain(&self.incrs)
    }

    /// A name for the next base file (not added to the manifest).
    pub fn next_base(&mut self, filename: &str) -> AofFile {
        self.base_seq += 1;
        AofFile {
            name: base_name(filename, self.base_seq),
            seq: self.base_seq,
            kind: FileKind::Base,
        }
    }

    /// A name for the next incremental file (not added to the manifest).
    pub fn next_incr(&mut self, filename: &str) -> AofFile {
        self.incr_seq += 1;
        AofFile {
            name: incr_name(filename, self.incr_seq),
            seq: self.incr_seq,
            kind: FileKind::Incr,
        }
    }

    /// A rewrite finished: `base` replaces the old base, `incr` (the file
    /// written since the rewrite began, if any) is the only incremental
    /// file left; every other file becomes history.
    pub fn switch_to(&mut self, base: AofFile, incr: Option<AofFile>) {
        let keep = incr.as_ref().map(|f| f.name.clone());
        let old = self
            .base
            .take()
            .into_iter()
            .chain(std::mem::take(&mut self.incrs))
            .filter(|f| Some(&f.name) != keep.as_ref());
        for mut f in old {
            f.kind = FileKind::History;
            self.history.push(f);
        }
        self.base = Some(base);
        self.incrs = incr.into_iter().collect();
    }

    /// Every file name the manifest refers to.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.base
            .iter()
            .chain(&self.incrs)
            .chain(&self.history)
            .map(|f| f.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIS_7: &str = "file appendonly.aof.1.base.rdb seq 1 type b\n\
                           file appendonly.aof.1.incr.aof seq 1 type h\n\
                           file appendonly.aof.2.incr.aof seq 2 type i\n\
                           file appendonly.aof.3.incr.aof seq 3 type i\n";

    #[test]
    fn a_redis_manifest_reads_and_writes_back_the_same() {
        let m = Manifest::parse(REDIS_7).unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, "appendonly.aof.1.base.rdb");
        assert_eq!(m.history.len(), 1);
        let order: Vec<&str> = m.replay_order().map(|f| f.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "appendonly.aof.1.base.rdb",
                "appendonly.aof.2.incr.aof",
                "appendonly.aof.3.incr.aof"
            ]
        );
        assert_eq!(m.render(), REDIS_7);
    }

    #[test]
    fn keys_in_any_order_comments_and_unknown_keys() {
        let m =
            Manifest::parse("# written by hand\n\ntype i seq 7 file \"a.7.incr.aof\" extra 1\n")
                .unwrap();
        assert_eq!(m.incrs[0].name, "a.7.incr.aof");
        assert_eq!(m.incrs[0].seq, 7);
        assert!(m.base.is_none());
    }

    #[test]
    fn broken_manifests_are_refused_with_the_line() {
        for (text, why) in [
            ("file a seq 1\n", "format"),
            ("file a seq x type b\n", "format"),
            ("file a seq 1 type z\n", "format"),
            ("file a seq 1 type b odd\n", "format"),
            (
                "file a seq 1 type b\nfile b seq 2 type b\n",
                "duplicate base",
            ),
            (
                "file a seq 2 type i\nfile b seq 2 type i\n",
                "non-monotonic",
            ),
            ("file ../a seq 1 type b\n", "plain name"),
        ] {
            let err = Manifest::parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
            assert!(err.starts_with("line "), "{err}");
        }
    }

    #[test]
    fn new_names_follow_the_sequence_and_a_switch_retires_old_files() {
        let mut m = Manifest::parse(REDIS_7).unwrap();
        let base = m.next_base("appendonly.aof");
        assert_eq!(base.name, "appendonly.aof.2.base.aof");
        let incr = m.next_incr("appendonly.aof");
        assert_eq!(incr.name, "appendonly.aof.4.incr.aof");
        m.incrs.push(incr.clone());
        m.switch_to(base.clone(), Some(incr.clone()));
        assert_eq!(m.base, Some(base));
        assert_eq!(m.incrs, vec![incr]);
        let history: Vec<&str> = m.history.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            history,
            [
                "appendonly.aof.1.incr.aof",
                "appendonly.aof.1.base.rdb",
                "appendonly.aof.2.incr.aof",
                "appendonly.aof.3.incr.aof"
            ]
        );
        let again = Manifest::parse(&m.render()).unwrap();
        assert_eq!(again.base, m.base);
        assert_eq!(again.incrs, m.incrs);
        assert_eq!(again.history.len(), 4);
    }

    #[test]
    fn an_empty_manifest_starts_at_one() {
        let mut m = Manifest::default();
        assert_eq!(m.next_base("x").name, "x.1.base.aof");
        assert_eq!(m.next_incr("x").name, "x.1.incr.aof");
        assert_eq!(manifest_name("x"), "x.manifest");
        assert_eq!(m.render(), "");
    }
}

//! Tables pasted as text (markdown pipes, CSV, TSV, `;`-separated, quoted cells): the
//! header cell of the column a value is in, so that the header's context words apply
//! to every cell below it ("Account No" makes each number in its column an account;
//! "Invoice" makes none of them one).
//!
//! Only called for a value whose type depends on context, so text without such values
//! never pays for it. A scan keeps a [`TableCache`] so that a long table is walked up
//! to its header once, not once per cell.

/// Header cells longer than this are prose, not a table header.
const MAX_HEADER_CELL: usize = 64;

/// Where the value's table cell is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cell {
    /// The header cell of the value's column, trimmed.
    pub(crate) header: (usize, usize),
    /// The value's own line: context words are looked for only in it.
    pub(crate) line: (usize, usize),
}

/// The table found for the previous value of a scan.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TableCache {
    found: Option<Block>,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    delim: u8,
    delims: usize,
    /// The header line.
    header: (usize, usize),
    /// The end of the last line known to belong to the table.
    verified_to: usize,
}

impl TableCache {
    /// The table cell containing byte `at`, if `at` is on a data row of a table.
    pub(crate) fn cell(&mut self, text: &str, at: usize) -> Option<Cell> {
        let b = text.as_bytes();
        if !starts_cell(b, at) {
            return None;
        }
        let line = line_around(b, at);
        // A header is on an earlier line.
        if line.0 == 0 {
            return None;
        }
        let row = &b[line.0..line.1];
        let delim = delimiter(row)?;
        let delims = count_delims(row, delim);
        let block = match self.found {
            Some(k) if k.delim == delim && k.delims == delims && line.0 >= k.verified_to => {
                extend(b, k, line).or_else(|| find_header(b, line, delim, delims))
            }
            Some(k)
                if k.delim == delim
                    && k.delims == delims
                    && line.1 <= k.verified_to
                    && line.0 > k.header.1 =>
            {
                Some(k)
            }
            _ => find_header(b, line, delim, delims),
        };
        self.found = block;
        let block = block?;
        let col = count_delims(&b[line.0..at], delim);
        let header = nth_cell(b, block.header, delim, col)?;
        Some(Cell { header, line })
    }
}

/// Whether a value at `at` starts a cell: only spaces, quotes or markup between it
/// and a delimiter or the start of its line. Values in prose fail this at once.
fn starts_cell(b: &[u8], at: usize) -> bool {
    let mut i = at;
    while i > 0 && matches!(b[i - 1], b' ' | b'"' | b'\'' | b'*' | b'_' | b'`' | b'+') {
        i -= 1;
    }
    i == 0 || matches!(b[i - 1], b'|' | b',' | b';' | b'\t' | b'\n' | b'\r')
}

/// The line `[start, end)` containing `at` (without its line break).
fn line_around(b: &[u8], at: usize) -> (usize, usize) {
    let s = memchr::memrchr(b'\n', &b[..at]).map_or(0, |p| p + 1);
    let mut e = memchr::memchr(b'\n', &b[at..]).map_or(b.len(), |p| at + p);
    if e > s && b[e - 1] == b'\r' {
        e -= 1;
    }
    (s, e)
}

/// The line before the one starting at `s`.
fn line_before(b: &[u8], s: usize) -> Option<(usize, usize)> {
    if s == 0 {
        return None;
    }
    Some(line_around(b, s - 1))
}

/// The cell delimiter of a table row: a pipe, a tab, a comma or a semicolon (in that
/// order of preference), outside quotes.
fn delimiter(row: &[u8]) -> Option<u8> {
    let mut seen = [false; 4];
    for &c in row {
        match c {
            b'|' => return Some(b'|'),
            b'\t' => seen[1] = true,
            b',' => seen[2] = true,
            b';' => seen[3] = true,
            _ => {}
        }
    }
    [b'\t', b',', b';']
        .into_iter()
        .zip(&seen[1..])
        .find_map(|(d, &s)| s.then_some(d))
}

/// The offsets in `row` of the delimiters outside double quotes.
fn unquoted(row: &[u8], delim: u8) -> impl Iterator<Item = usize> + '_ {
    let mut quoted = false;
    row.iter().enumerate().filter_map(move |(i, &c)| {
        if c == b'"' {
            quoted = !quoted;
        }
        (c == delim && !quoted).then_some(i)
    })
}

/// How many delimiters `row` has outside double quotes.
fn count_delims(row: &[u8], delim: u8) -> usize {
    unquoted(row, delim).count()
}

/// A markdown header separator row (`|---|:--:|`).
fn is_rule(row: &[u8]) -> bool {
    row.contains(&b'-')
        && row
            .iter()
            .all(|c| matches!(c, b'|' | b'-' | b':' | b' ' | b'\t' | b'+' | b'='))
}

/// Whether `line` is a row of the same table.
fn same_table(b: &[u8], line: (usize, usize), delim: u8, delims: usize) -> bool {
    let row = &b[line.0..line.1];
    !row.iter().all(u8::is_ascii_whitespace) && count_delims(row, delim) == delims
}

/// Walks up from `line` to the first row of its table; that row is the header.
fn find_header(b: &[u8], line: (usize, usize), delim: u8, delims: usize) -> Option<Block> {
    let mut top = line;
    let mut cur = line;
    while let Some(prev) = line_before(b, cur.0) {
        if !same_table(b, prev, delim, delims) && !is_rule(&b[prev.0..prev.1]) {
            break;
        }
        if !is_rule(&b[prev.0..prev.1]) {
            top = prev;
        }
        cur = prev;
    }
    if top == line || !header_like(b, top, delim) {
        return None;
    }
    Some(Block {
        delim,
        delims,
        header: top,
        verified_to: line.1,
    })
}

/// Extends a known table down to `line`, if every line in between belongs to it.
fn extend(b: &[u8], mut k: Block, line: (usize, usize)) -> Option<Block> {
    let mut cur = line;
    while cur.0 > k.verified_to {
        let prev = line_before(b, cur.0)?;
        if prev.1 < k.verified_to {
            break;
        }
        if !same_table(b, prev, k.delim, k.delims) && !is_rule(&b[prev.0..prev.1]) {
            return None;
        }
        cur = prev;
    }
    k.verified_to = line.1;
    Some(k)
}

/// A header row has short cells.
fn header_like(b: &[u8], line: (usize, usize), delim: u8) -> bool {
    let row = &b[line.0..line.1];
    let mut cell_start = 0;
    unquoted(row, delim)
        .chain([row.len()])
        .all(|d| std::mem::replace(&mut cell_start, d + 1) + MAX_HEADER_CELL >= d)
}

/// The `col`-th cell (0-based, counted by delimiters) of `line`, trimmed of spaces,
/// quotes and markup.
fn nth_cell(b: &[u8], line: (usize, usize), delim: u8, col: usize) -> Option<(usize, usize)> {
    let row = &b[line.0..line.1];
    let mut bounds = unquoted(row, delim);
    let s = match col {
        0 => 0,
        _ => bounds.nth(col - 1)? + 1,
    };
    let e = bounds.next().unwrap_or(row.len());
    let trim = |c: &u8| matches!(c, b' ' | b'\t' | b'"' | b'*' | b'_' | b'`');
    let lead = row[s..e].iter().take_while(|c| trim(c)).count();
    let trail = row[s + lead..e]
        .iter()
        .rev()
        .take_while(|c| trim(c))
        .count();
    let (s, e) = (line.0 + s + lead, line.0 + e - trail);
    (s < e).then_some((s, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(text: &str, needle: &str) -> Option<String> {
        let at = text.find(needle).unwrap();
        TableCache::default()
            .cell(text, at)
            .map(|c| text[c.header.0..c.header.1].to_owned())
    }

    #[test]
    fn markdown_csv_and_tsv_headers() {
        let md = "| Name | Account No | Invoice |\n|---|:---:|---|\n| Ravi | 123456789 | 555 |\n| Asha | 987654321 | 556 |";
        assert_eq!(header_of(md, "987654321").as_deref(), Some("Account No"));
        assert_eq!(header_of(md, "556").as_deref(), Some("Invoice"));
        let csv = "name,\"Account, No\",city\r\nRavi,123456789,Pune\r\n\"Iyer, A\",987654321,Goa";
        assert_eq!(header_of(csv, "987654321").as_deref(), Some("Account, No"));
        let tsv = "id\tacct\n1\t123456789\n2\t987654321";
        assert_eq!(header_of(tsv, "987654321").as_deref(), Some("acct"));
    }

    #[test]
    fn prose_is_not_a_table() {
        assert_eq!(header_of("account 123456789", "123456789"), None);
        assert_eq!(
            header_of("Hello, team\n\nsend 123456789, thanks", "123456789"),
            None
        );
        // A header row is its own header of nothing.
        assert_eq!(header_of("a,b\n1,2", "a"), None);
    }

    #[test]
    fn the_cache_follows_a_long_table_once() {
        let mut t = String::from("Invoice,Account No\n");
        for i in 0..2000 {
            t.push_str(&format!("{i},{}\n", 100000000 + i));
        }
        let mut cache = TableCache::default();
        let mut at = 0;
        let mut n = 0;
        while let Some(p) = t[at..].find(",1000") {
            let c = cache.cell(&t, at + p + 1).unwrap();
            assert_eq!(&t[c.header.0..c.header.1], "Account No");
            at += p + 2;
            n += 1;
        }
        assert_eq!(n, 2000);
    }
}

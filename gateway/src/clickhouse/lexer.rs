//! ClickHouse's SQL lexer, rule for rule (`src/Parsers/Lexer.cpp` of current ClickHouse).
//!
//! The SQL guards must see a query exactly as the server will: a comment or literal the
//! guard ends one byte earlier or later than ClickHouse is a place to hide a statement.
//! So this is not a SQL lexer "in general" but a port of ClickHouse's token boundaries:
//! whitespace (ASCII and the Unicode set ClickHouse skips), `--`/`//`/`# `/`#!` line
//! comments, nested `/* */` comments, `'...'` literals with `\` escapes and doubled quotes,
//! `x'..'`/`b'..'`, `"..."`/`` `...` `` identifiers, `$name$...$name$` heredocs, `‘...’`
//! and `“...”`, numbers, bare words and operators. What ClickHouse calls an error is an
//! [`TokenKind::Error`]; the guards refuse any query that has one.
//!
//! The lexer works on bytes (as ClickHouse does) but only ever ends a token after an ASCII
//! byte or a whole UTF-8 sequence, so every token's range is a valid `str` range.

// Network text: no indexing or slicing that could panic (get() and iterators only).
#![deny(clippy::indexing_slicing, clippy::string_slice)]

/// What a token is. Operators and brackets that the guards never look at are `Operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Whitespace,
    /// `-- ...`, `// ...`, `# ...`, `#!...` (up to, not including, the newline) or `/* */`.
    Comment,
    BareWord,
    Number,
    /// `'...'`, `x'..'`, `b'..'` or `‘...’`.
    StringLiteral,
    /// `"..."`, `` `...` `` or `“...”`.
    QuotedIdentifier,
    /// `$name$ ... $name$` (the name may be empty): a string literal.
    HereDoc,
    Semicolon,
    OpeningRoundBracket,
    ClosingRoundBracket,
    ClosingSquareBracket,
    Dot,
    /// Every other operator, bracket or punctuation token ClickHouse knows.
    Operator,
    Error(LexError),
}

/// The error tokens of ClickHouse's lexer (`getErrorTokenDescription`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LexError {
    /// A byte that starts no token (`Unrecognized token`).
    Unrecognized,
    MultilineCommentIsNotClosed,
    SingleQuoteIsNotClosed,
    DoubleQuoteIsNotClosed,
    BackQuoteIsNotClosed,
    SingleExclamationMark,
    WrongNumber,
}

impl LexError {
    pub fn describe(self) -> &'static str {
        match self {
            LexError::Unrecognized => "an unrecognized character",
            LexError::MultilineCommentIsNotClosed => "an unclosed /* comment",
            LexError::SingleQuoteIsNotClosed => "an unclosed string literal",
            LexError::DoubleQuoteIsNotClosed => "an unclosed double-quoted identifier",
            LexError::BackQuoteIsNotClosed => "an unclosed back-quoted identifier",
            LexError::SingleExclamationMark => "a `!` that is not part of `!=`",
            LexError::WrongNumber => "a malformed number",
        }
    }
}

/// One token: its kind and its byte range in the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// The token's text (empty if the range were ever not a `str` range).
    pub fn text(self, sql: &str) -> &str {
        sql.get(self.start..self.end).unwrap_or("")
    }

    /// Whitespace and comments are insignificant, as in ClickHouse.
    pub fn is_significant(self) -> bool {
        !matches!(self.kind, TokenKind::Whitespace | TokenKind::Comment)
    }
}

/// All tokens of `sql`, in order, covering every byte.
pub fn tokenize(sql: &str) -> Vec<Token> {
    let mut lexer = Lexer {
        b: sql.as_bytes(),
        sql,
        pos: 0,
        prev_significant: None,
    };
    let mut tokens = Vec::new();
    while let Some(t) = lexer.next_token() {
        tokens.push(t);
    }
    tokens
}

struct Lexer<'a> {
    b: &'a [u8],
    sql: &'a str,
    pos: usize,
    /// The kind of the last significant token: a `.` and digits lex differently after some.
    prev_significant: Option<TokenKind>,
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// ClickHouse's `isWhitespaceASCII`: no other control characters.
fn is_ascii_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0C' | b'\x0B')
}

impl Lexer<'_> {
    fn at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    fn is(&self, i: usize, c: u8) -> bool {
        self.at(i) == Some(c)
    }

    fn len(&self) -> usize {
        self.b.len()
    }

    fn next_token(&mut self) -> Option<Token> {
        let start = self.pos;
        let c = self.at(start)?;
        let kind = self.lex_one(c);
        // Every branch advances; the guard below keeps a bug from looping forever.
        if self.pos <= start {
            self.pos = self.char_end(start);
        }
        let token = Token {
            kind,
            start,
            end: self.pos,
        };
        if token.is_significant() {
            self.prev_significant = Some(kind);
        }
        Some(token)
    }

    /// The end of the UTF-8 character that starts at `i` (for error tokens, so a token
    /// never ends inside a character).
    fn char_end(&self, i: usize) -> usize {
        let mut end = i + 1;
        while end < self.len() && !self.sql.is_char_boundary(end) {
            end += 1;
        }
        end.min(self.len())
    }

    fn lex_one(&mut self, c: u8) -> TokenKind {
        let start = self.pos;
        match c {
            c if is_ascii_space(c) => {
                while self.at(self.pos).is_some_and(is_ascii_space) {
                    self.pos += 1;
                }
                TokenKind::Whitespace
            }
            b'0'..=b'9' => self.number(),
            b'\'' => self.quoted(
                b'\'',
                TokenKind::StringLiteral,
                LexError::SingleQuoteIsNotClosed,
            ),
            b'"' => self.quoted(
                b'"',
                TokenKind::QuotedIdentifier,
                LexError::DoubleQuoteIsNotClosed,
            ),
            b'`' => self.quoted(
                b'`',
                TokenKind::QuotedIdentifier,
                LexError::BackQuoteIsNotClosed,
            ),
            b'(' => self.single(TokenKind::OpeningRoundBracket),
            b')' => self.single(TokenKind::ClosingRoundBracket),
            b']' => self.single(TokenKind::ClosingSquareBracket),
            b'[' | b'{' | b'}' | b',' | b'+' | b'*' | b'%' | b'?' | b'^' => {
                self.single(TokenKind::Operator)
            }
            b';' => self.single(TokenKind::Semicolon),
            b'.' => self.dot(),
            b'-' => {
                self.pos += 1;
                if self.is(self.pos, b'>') {
                    self.pos += 1;
                } else if self.is(self.pos, b'-') {
                    return self.line_comment();
                }
                TokenKind::Operator
            }
            b'/' => {
                self.pos += 1;
                if self.is(self.pos, b'/') {
                    return self.line_comment();
                }
                if self.is(self.pos, b'*') {
                    self.pos += 1;
                    return self.block_comment();
                }
                TokenKind::Operator
            }
            b'#' => {
                // A comment only before a space or `!` (shebang); `#x` is an error.
                self.pos += 1;
                if matches!(self.at(self.pos), Some(b' ' | b'!')) {
                    return self.line_comment();
                }
                TokenKind::Error(LexError::Unrecognized)
            }
            b'=' => self.one_or_two(b'='),
            b'!' => {
                self.pos += 1;
                if self.is(self.pos, b'=') {
                    self.pos += 1;
                    return TokenKind::Operator;
                }
                TokenKind::Error(LexError::SingleExclamationMark)
            }
            b'<' => {
                self.pos += 1;
                if self.is(self.pos, b'=') && self.is(self.pos + 1, b'>') {
                    self.pos += 2;
                } else if matches!(self.at(self.pos), Some(b'=' | b'>')) {
                    self.pos += 1;
                }
                TokenKind::Operator
            }
            b'>' => self.one_or_two(b'='),
            b':' => self.one_or_two(b':'),
            b'|' => self.one_or_two(b'|'),
            b'@' => self.one_or_two(b'@'),
            b'\\' => {
                self.pos += 1;
                if self.is(self.pos, b'G') {
                    self.pos += 1;
                    return TokenKind::Operator;
                }
                TokenKind::Error(LexError::Unrecognized)
            }
            0xE2 => {
                // U+2212 MINUS SIGN is a minus.
                if self.is(start + 1, 0x88) && self.is(start + 2, 0x92) {
                    self.pos += 3;
                    return TokenKind::Operator;
                }
                // ‘string’ (E2 80 98 .. E2 80 99) and “identifier” (E2 80 9C .. E2 80 9D),
                // recognised only with room for both quotes (6 bytes), as ClickHouse does.
                if start + 5 < self.len() && self.is(start + 1, 0x80) {
                    match self.at(start + 2) {
                        Some(0x98) => {
                            return self.unicode_quoted(
                                0x99,
                                TokenKind::StringLiteral,
                                LexError::SingleQuoteIsNotClosed,
                            )
                        }
                        Some(0x9C) => {
                            return self.unicode_quoted(
                                0x9D,
                                TokenKind::QuotedIdentifier,
                                LexError::DoubleQuoteIsNotClosed,
                            )
                        }
                        _ => {}
                    }
                }
                self.other()
            }
            _ => self.other(),
        }
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.pos += 1;
        kind
    }

    /// A one-byte operator, or two bytes when `second` follows (`==`, `>=`, `::`, `||`, `@@`).
    fn one_or_two(&mut self, second: u8) -> TokenKind {
        self.pos += 1;
        if self.is(self.pos, second) {
            self.pos += 1;
        }
        TokenKind::Operator
    }

    /// Up to (not including) the next `\n`: a newline cannot be escaped in a line comment.
    fn line_comment(&mut self) -> TokenKind {
        while self.at(self.pos).is_some_and(|c| c != b'\n') {
            self.pos += 1;
        }
        TokenKind::Comment
    }

    /// After `/*`: comments nest, as in the SQL standard and current ClickHouse.
    fn block_comment(&mut self) -> TokenKind {
        let mut depth = 1usize;
        while self.pos + 2 <= self.len() {
            if self.is(self.pos, b'/') && self.is(self.pos + 1, b'*') {
                self.pos += 2;
                depth += 1;
            } else if self.is(self.pos, b'*') && self.is(self.pos + 1, b'/') {
                self.pos += 2;
                depth -= 1;
                if depth == 0 {
                    return TokenKind::Comment;
                }
            } else {
                self.pos += 1;
            }
        }
        self.pos = self.len();
        TokenKind::Error(LexError::MultilineCommentIsNotClosed)
    }

    /// `'...'`, `"..."` or `` `...` ``: a backslash escapes the next byte, a doubled quote
    /// is one quote.
    fn quoted(&mut self, quote: u8, ok: TokenKind, unclosed: LexError) -> TokenKind {
        self.pos += 1;
        loop {
            match self.at(self.pos) {
                None => return TokenKind::Error(unclosed),
                Some(c) if c == quote => {
                    self.pos += 1;
                    if self.is(self.pos, quote) {
                        self.pos += 1;
                        continue;
                    }
                    return ok;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    if self.pos >= self.len() {
                        return TokenKind::Error(unclosed);
                    }
                    // The escaped byte may start a multi-byte character: step over all of it.
                    self.pos = self.char_end(self.pos);
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// After a 3-byte Unicode opening quote: up to the matching closing quote, no escapes.
    fn unicode_quoted(&mut self, close: u8, ok: TokenKind, unclosed: LexError) -> TokenKind {
        self.pos += 3;
        while self.pos + 2 < self.len() {
            if self.is(self.pos, 0xE2)
                && self.is(self.pos + 1, 0x80)
                && self.is(self.pos + 2, close)
            {
                self.pos += 3;
                return ok;
            }
            self.pos += 1;
        }
        self.pos = self.len();
        TokenKind::Error(unclosed)
    }

    /// ClickHouse's `isNumberSeparator`: `_` between two digits of one block.
    fn is_number_separator(&self, start_of_block: bool, hex: bool, i: usize) -> bool {
        if !self.is(i, b'_') || start_of_block {
            return false;
        }
        match self.at(i + 1) {
            Some(n) if hex => n.is_ascii_hexdigit(),
            Some(n) => n.is_ascii_digit(),
            None => false,
        }
    }

    fn digits(&mut self, mut start_of_block: bool, hex: bool) {
        while let Some(c) = self.at(self.pos) {
            let digit = if hex {
                c.is_ascii_hexdigit()
            } else {
                c.is_ascii_digit()
            };
            if !(digit || self.is_number_separator(start_of_block, hex, self.pos)) {
                break;
            }
            self.pos += 1;
            start_of_block = false;
        }
    }

    /// An exponent (`e`/`E`, or `p`/`P` after hex digits) with an optional sign.
    fn exponent(&mut self, hex: bool) {
        let marker = self.at(self.pos).is_some_and(|c| {
            if hex {
                c == b'p' || c == b'P'
            } else {
                c == b'e' || c == b'E'
            }
        });
        if self.pos + 1 < self.len() && marker {
            self.pos += 1;
            if self.pos + 1 < self.len() && matches!(self.at(self.pos), Some(b'-' | b'+')) {
                self.pos += 1;
            }
            self.digits(true, false);
        }
    }

    fn number(&mut self) -> TokenKind {
        let start = self.pos;
        if self.prev_significant == Some(TokenKind::Dot) {
            // After a dot only an integer (tuple access `x.1.1`).
            self.pos += 1;
            self.digits(false, false);
        } else {
            let mut hex = false;
            let mut start_of_block = false;
            let radix = self.at(start + 1);
            if start + 2 < self.len()
                && self.is(start, b'0')
                && matches!(radix, Some(b'x' | b'X' | b'b' | b'B'))
            {
                let valid = if matches!(radix, Some(b'x' | b'X')) {
                    hex = self.at(start + 2).is_some_and(|c| c.is_ascii_hexdigit());
                    hex
                } else {
                    matches!(self.at(start + 2), Some(b'0' | b'1'))
                };
                if valid {
                    self.pos += 2;
                    start_of_block = true;
                } else {
                    self.pos += 1;
                }
            } else {
                self.pos += 1;
            }
            self.digits(start_of_block, hex);
            if self.is(self.pos, b'.') {
                self.pos += 1;
                self.digits(true, hex);
            }
            self.exponent(hex);
        }
        // `1abc` is a bare word; `1.5abc` is a wrong number.
        if self.at(self.pos).is_some_and(is_word_char) {
            while self.at(self.pos).is_some_and(is_word_char) {
                self.pos += 1;
            }
            let all_word =
                (start..self.pos).all(|i| self.at(i).is_some_and(|c| is_word_char(c) || c == b'$'));
            return if all_word {
                TokenKind::BareWord
            } else {
                TokenKind::Error(LexError::WrongNumber)
            };
        }
        TokenKind::Number
    }

    /// A qualifier or tuple-access dot, or a number such as `.5`.
    fn dot(&mut self) -> TokenKind {
        let start = self.pos;
        let digit_follows = self.at(start + 1).is_some_and(|c| c.is_ascii_digit());
        let after_operand = matches!(
            self.prev_significant,
            Some(
                TokenKind::ClosingRoundBracket
                    | TokenKind::ClosingSquareBracket
                    | TokenKind::BareWord
                    | TokenKind::QuotedIdentifier
                    | TokenKind::Number
            )
        );
        if start > 0 && (!digit_follows || after_operand) {
            self.pos += 1;
            return TokenKind::Dot;
        }
        self.pos += 1;
        self.digits(true, false);
        self.exponent(false);
        TokenKind::Number
    }

    /// Heredocs, `$`, `x'..'`/`b'..'`, bare words, Unicode whitespace, or an error.
    fn other(&mut self) -> TokenKind {
        let start = self.pos;
        if self.is(start, b'$') {
            if let Some(kind) = self.heredoc() {
                return kind;
            }
            // A lone `$` (before a non-word byte or at the end) is its own token.
            if !self.at(start + 1).is_some_and(is_word_char) {
                self.pos += 1;
                return TokenKind::Operator;
            }
        }
        if start + 2 < self.len()
            && self.is(start + 1, b'\'')
            && matches!(self.at(start), Some(b'x' | b'X' | b'b' | b'B'))
        {
            return self.hex_or_bin_string();
        }
        if self.at(start).is_some_and(|c| is_word_char(c) || c == b'$') {
            while self
                .at(self.pos)
                .is_some_and(|c| is_word_char(c) || c == b'$')
            {
                self.pos += 1;
            }
            return TokenKind::BareWord;
        }
        self.pos = self.unicode_whitespace_end(start);
        if self.pos > start {
            TokenKind::Whitespace
        } else {
            self.pos = self.char_end(start);
            TokenKind::Error(LexError::Unrecognized)
        }
    }

    /// `$name$ ... $name$`: the name is everything up to the next `$` (it may be empty,
    /// or hold any byte); the heredoc ends at the next occurrence of the same delimiter.
    fn heredoc(&mut self) -> Option<TokenKind> {
        let start = self.pos;
        let rest = self.sql.get(start..)?;
        let name_end = rest.get(1..)?.find('$')? + 1;
        let delimiter = rest.get(..=name_end)?;
        let body = rest.get(delimiter.len()..)?;
        let close = body.find(delimiter)?;
        self.pos = start + delimiter.len() + close + delimiter.len();
        Some(TokenKind::HereDoc)
    }

    /// `x'..'` (hex digits only) or `b'..'` (0 and 1 only); anything else before the closing
    /// quote makes the literal unclosed, up to the end of the query.
    fn hex_or_bin_string(&mut self) -> TokenKind {
        let hex = matches!(self.at(self.pos), Some(b'x' | b'X'));
        self.pos += 2;
        while self.at(self.pos).is_some_and(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                c == b'0' || c == b'1'
            }
        }) {
            self.pos += 1;
        }
        if self.is(self.pos, b'\'') {
            self.pos += 1;
            TokenKind::StringLiteral
        } else {
            self.pos = self.len();
            TokenKind::Error(LexError::SingleQuoteIsNotClosed)
        }
    }

    /// ClickHouse's `skipWhitespacesUTF8`: ASCII whitespace and U+0085, U+00A0, U+180E,
    /// U+2000..U+200D, U+2028, U+2029, U+202F, U+205F, U+2060, U+3000, U+FEFF.
    fn unicode_whitespace_end(&self, mut i: usize) -> usize {
        loop {
            let Some(c) = self.at(i) else { return i };
            if is_ascii_space(c) {
                i += 1;
                continue;
            }
            let (b1, b2) = (self.at(i + 1), self.at(i + 2));
            let two = c == 0xC2 && matches!(b1, Some(0x85 | 0xA0));
            if two {
                i += 2;
                continue;
            }
            let three = match (c, b1, b2) {
                (0xE1, Some(0xA0), Some(0x8E)) => true,
                (0xE2, Some(0x80), Some(x)) => {
                    matches!(x, 0x80..=0x8D | 0xA8 | 0xA9 | 0xAF)
                }
                (0xE2, Some(0x81), Some(x)) => matches!(x, 0x9F | 0xA0),
                (0xE3, Some(0x80), Some(0x80)) => true,
                (0xEF, Some(0xBB), Some(0xBF)) => true,
                _ => false,
            };
            if three {
                i += 3;
                continue;
            }
            return i;
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use TokenKind::*;

    /// The significant and insignificant tokens as (kind, text) pairs.
    fn lex(sql: &str) -> Vec<(TokenKind, &str)> {
        tokenize(sql)
            .into_iter()
            .map(|t| (t.kind, t.text(sql)))
            .collect()
    }

    fn kinds(sql: &str) -> Vec<TokenKind> {
        tokenize(sql).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokens_cover_every_byte_in_order() {
        let sql = "SELECT a, 'b' /* c */ FROM t -- d\n;";
        let tokens = tokenize(sql);
        let mut at = 0;
        for t in &tokens {
            assert_eq!(t.start, at);
            assert!(t.end > t.start);
            at = t.end;
        }
        assert_eq!(at, sql.len());
    }

    #[test]
    fn line_comments_are_double_dash_double_slash_and_hash_space_or_bang() {
        for (sql, comment) in [
            ("-- x '\n1", "-- x '"),
            ("// x '\n1", "// x '"),
            ("# x '\n1", "# x '"),
            ("#!/usr/bin/env x\n1", "#!/usr/bin/env x"),
        ] {
            assert_eq!(
                lex(sql),
                vec![(Comment, comment), (Whitespace, "\n"), (Number, "1")],
                "{sql:?}"
            );
        }
        // A line comment runs to the end of the query without a newline.
        assert_eq!(
            lex("1 --'"),
            vec![(Number, "1"), (Whitespace, " "), (Comment, "--'")]
        );
    }

    #[test]
    fn hash_without_space_or_bang_is_an_error() {
        assert_eq!(kinds("#x"), vec![Error(LexError::Unrecognized), BareWord]);
        assert_eq!(kinds("#"), vec![Error(LexError::Unrecognized)]);
        assert_eq!(
            kinds("#\tx"),
            vec![Error(LexError::Unrecognized), Whitespace, BareWord]
        );
    }

    #[test]
    fn block_comments_nest() {
        assert_eq!(
            lex("/* /* */ SELECT 1 */ DROP"),
            vec![
                (Comment, "/* /* */ SELECT 1 */"),
                (Whitespace, " "),
                (BareWord, "DROP")
            ]
        );
        assert_eq!(lex("/**/x"), vec![(Comment, "/**/"), (BareWord, "x")]);
        // `/*/` opens a comment and does not close it.
        assert_eq!(
            kinds("/*/ x"),
            vec![Error(LexError::MultilineCommentIsNotClosed)]
        );
        assert_eq!(
            kinds("/* /* */"),
            vec![Error(LexError::MultilineCommentIsNotClosed)]
        );
    }

    #[test]
    fn string_literals_take_backslash_escapes_and_doubled_quotes() {
        assert_eq!(lex(r"'a\'b'"), vec![(StringLiteral, r"'a\'b'")]);
        assert_eq!(
            lex("'a''b'c"),
            vec![(StringLiteral, "'a''b'"), (BareWord, "c")]
        );
        assert_eq!(
            lex(r"'\\'x"),
            vec![(StringLiteral, r"'\\'"), (BareWord, "x")]
        );
        assert_eq!(lex("'-- /*'"), vec![(StringLiteral, "'-- /*'")]);
        assert_eq!(
            kinds(r"'abc\'"),
            vec![Error(LexError::SingleQuoteIsNotClosed)]
        );
        assert_eq!(
            kinds("'abc\\"),
            vec![Error(LexError::SingleQuoteIsNotClosed)]
        );
        // A backslash before a multi-byte character escapes all of it.
        assert_eq!(lex("'\\é'"), vec![(StringLiteral, "'\\é'")]);
    }

    #[test]
    fn hex_and_binary_strings() {
        assert_eq!(lex("x'4A'"), vec![(StringLiteral, "x'4A'")]);
        assert_eq!(lex("B'0101'"), vec![(StringLiteral, "B'0101'")]);
        // A non-digit inside makes it unclosed to the end, even with a later quote.
        assert_eq!(
            kinds("x'4G' , 1"),
            vec![Error(LexError::SingleQuoteIsNotClosed)]
        );
        assert_eq!(kinds("x''"), vec![StringLiteral]);
        // Too short to be one: `x`, then an unclosed literal.
        assert_eq!(
            kinds("x'"),
            vec![BareWord, Error(LexError::SingleQuoteIsNotClosed)]
        );
    }

    #[test]
    fn quoted_identifiers_with_escapes() {
        assert_eq!(lex(r#""a\"b" x"#)[0], (QuotedIdentifier, r#""a\"b""#));
        assert_eq!(lex("`a``b` x")[0], (QuotedIdentifier, "`a``b`"));
        assert_eq!(lex(r"`a\`b`")[0], (QuotedIdentifier, r"`a\`b`"));
        assert_eq!(kinds("\"ab"), vec![Error(LexError::DoubleQuoteIsNotClosed)]);
        assert_eq!(kinds("`ab"), vec![Error(LexError::BackQuoteIsNotClosed)]);
    }

    #[test]
    fn unicode_quotes_are_strings_and_identifiers() {
        assert_eq!(lex("‘a'b’"), vec![(StringLiteral, "‘a'b’")]);
        assert_eq!(
            lex("“url”("),
            vec![(QuotedIdentifier, "“url”"), (OpeningRoundBracket, "(")]
        );
        assert_eq!(kinds("‘abc"), vec![Error(LexError::SingleQuoteIsNotClosed)]);
        // Without room for both quotes it is no quote at all.
        assert_eq!(kinds("‘a"), vec![Error(LexError::Unrecognized), BareWord]);
        assert_eq!(lex("1 − 2")[2], (Operator, "−"));
    }

    #[test]
    fn heredocs_end_at_the_same_delimiter() {
        assert_eq!(lex("$$a'b$$"), vec![(HereDoc, "$$a'b$$")]);
        assert_eq!(
            lex("$x$ $$ $x$;"),
            vec![(HereDoc, "$x$ $$ $x$"), (Semicolon, ";")]
        );
        // The name is anything up to the next `$`.
        assert_eq!(lex("$ ' $ a $ ' $"), vec![(HereDoc, "$ ' $ a $ ' $")]);
        // Unclosed: a lone `$` or a bare word with `$`.
        assert_eq!(kinds("$ a"), vec![Operator, Whitespace, BareWord]);
        assert_eq!(
            lex("$a $b"),
            vec![(BareWord, "$a"), (Whitespace, " "), (BareWord, "$b")]
        );
        assert_eq!(lex("a$b"), vec![(BareWord, "a$b")]);
    }

    #[test]
    fn unicode_whitespace_is_whitespace_and_other_characters_are_errors() {
        for ws in [
            '\u{85}', '\u{a0}', '\u{180e}', '\u{2000}', '\u{2003}', '\u{200b}', '\u{200d}',
            '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{2060}', '\u{3000}', '\u{feff}',
        ] {
            let sql = format!("a{ws}b");
            assert_eq!(
                kinds(&sql),
                vec![BareWord, Whitespace, BareWord],
                "U+{:04X}",
                ws as u32
            );
        }
        for not_ws in ['\u{1680}', '\u{200e}', 'é', '\u{2061}', '\u{3001}'] {
            let sql = format!("a{not_ws}b");
            assert_eq!(
                kinds(&sql),
                vec![BareWord, Error(LexError::Unrecognized), BareWord],
                "U+{:04X}",
                not_ws as u32
            );
        }
        // Control characters other than ASCII whitespace are not whitespace.
        assert_eq!(
            kinds("a\0b"),
            vec![BareWord, Error(LexError::Unrecognized), BareWord]
        );
    }

    #[test]
    fn numbers_and_words_that_start_with_digits() {
        assert_eq!(kinds("1"), vec![Number]);
        assert_eq!(kinds("0x1F"), vec![Number]);
        assert_eq!(kinds("0b101"), vec![Number]);
        assert_eq!(kinds("1_000.5e-3"), vec![Number]);
        assert_eq!(kinds("0x1p3"), vec![Number]);
        assert_eq!(kinds("1abc"), vec![BareWord]);
        assert_eq!(kinds("0xg"), vec![BareWord]);
        assert_eq!(kinds("1.5abc"), vec![Error(LexError::WrongNumber)]);
        assert_eq!(kinds("1e-5x"), vec![Error(LexError::WrongNumber)]);
    }

    #[test]
    fn dots_are_qualifiers_after_operands_and_numbers_otherwise() {
        assert_eq!(
            lex("t.1.1"),
            vec![
                (BareWord, "t"),
                (Dot, "."),
                (Number, "1"),
                (Dot, "."),
                (Number, "1")
            ]
        );
        assert_eq!(lex(".5"), vec![(Number, ".5")]);
        assert_eq!(lex("1 + .5e3")[4], (Number, ".5e3"));
        assert_eq!(lex("a.b")[1], (Dot, "."));
    }

    #[test]
    fn operators() {
        assert_eq!(
            lex("a<=>b<>c!=d==e||f::g->h@@i"),
            vec![
                (BareWord, "a"),
                (Operator, "<=>"),
                (BareWord, "b"),
                (Operator, "<>"),
                (BareWord, "c"),
                (Operator, "!="),
                (BareWord, "d"),
                (Operator, "=="),
                (BareWord, "e"),
                (Operator, "||"),
                (BareWord, "f"),
                (Operator, "::"),
                (BareWord, "g"),
                (Operator, "->"),
                (BareWord, "h"),
                (Operator, "@@"),
                (BareWord, "i"),
            ]
        );
        assert_eq!(kinds("!"), vec![Error(LexError::SingleExclamationMark)]);
        assert_eq!(kinds("\\G"), vec![Operator]);
        assert_eq!(kinds("\\x"), vec![Error(LexError::Unrecognized), BareWord]);
        assert_eq!(kinds("a/b"), vec![BareWord, Operator, BareWord]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Text rich in the characters that start or end tokens, so the lexer's edges are hit.
    fn sqlish() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "'", "\"", "`", "$", "$$", "$a$", "/*", "*/", "--", "//", "#", "# ", "#!", "\\", "\n",
            " ", "x'", "b'", "0x", "1", ".", "e", "_", "a", ";", "(", ")", "!", "<", "=",
            "\u{2018}", "\u{2019}", "\u{201C}", "\u{201D}", "\u{2212}", "\u{a0}", "\u{3000}",
            "\u{feff}", "é", "\u{e2}",
        ]);
        prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
    }

    fn assert_tiles(sql: &str) {
        let mut at = 0;
        for t in tokenize(sql) {
            assert_eq!(t.start, at, "{sql:?}");
            assert!(t.end > t.start, "{sql:?}");
            assert!(sql.get(t.start..t.end).is_some(), "{sql:?}: {t:?}");
            at = t.end;
        }
        assert_eq!(at, sql.len(), "{sql:?}");
    }

    proptest! {
        #[test]
        fn any_string_tokenizes_into_char_aligned_tiles(sql in any::<String>()) {
            assert_tiles(&sql);
        }

        #[test]
        fn sql_like_strings_tokenize_into_char_aligned_tiles(sql in sqlish()) {
            assert_tiles(&sql);
        }

        #[test]
        fn any_bytes_read_as_utf8_tokenize(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            assert_tiles(&String::from_utf8_lossy(&bytes));
        }
    }
}

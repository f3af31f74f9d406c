//! Every NextEngine message code the client acts on: one table, read by the
//! call paths through [`class_of`], so a code's meaning and its handling
//! cannot drift apart. Sources are named per row; see
//! `../shared/reference/nextengine-api.md` §2.2 and its "Update" table.

/// What the client does with an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    /// NextEngine did nothing and asks to come back later (overload,
    /// maintenance, another job holding the data). Retried with backoff,
    /// uploads too: the answer proves no queue was created.
    Busy,
    /// A superseded token pair: reload the stored pair and retry once.
    StaleToken,
    /// The tokens are unusable; only a new sign-in (再取得) fixes it.
    Token,
    /// The account or its main function is suspended (利用停止): neither a
    /// retry nor a new sign-in helps, the contract has to be sorted out.
    Suspended,
    /// Any other refusal: reported as is, never retried.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeCode {
    pub code: &'static str,
    pub class: CodeClass,
    pub meaning: &'static str,
    pub source: &'static str,
}

const HAMEE_ROUTER: &str =
    "hamee-dev/app-template-fuel router.php (reference §2.2, Update \"Codes\")";
const HAMEE_BULK: &str = "hamee-dev/extension-bulk-update-orders neapi.php (reference §2.2)";

/// Codes not listed here are [`CodeClass::Refused`].
pub const CODES: &[NeCode] = &[
    NeCode {
        code: "000001",
        class: CodeClass::Busy,
        meaning: "path does not exist; Hamee sees it during deploys and overload and retries it",
        source: HAMEE_BULK,
    },
    NeCode {
        code: "001001",
        class: CodeClass::Refused,
        meaning: "POSTパラメータにuidが指定されていません",
        source: "third-party (morris-shopline), reference §2.2",
    },
    NeCode {
        code: "001007",
        class: CodeClass::Suspended,
        meaning: "[xxxxx]様のネクストエンジンが、次の理由により利用停止になっています。",
        source: HAMEE_ROUTER,
    },
    NeCode {
        code: "002001",
        class: CodeClass::Token,
        meaning: "POSTパラメータにaccess_tokenが指定されていません",
        source: "third-party (morris-shopline), reference §2.2",
    },
    NeCode {
        code: "002002",
        class: CodeClass::StaleToken,
        meaning: "access_token, refresh_tokenが不正 (a pair already rotated away); no tokens in the answer",
        source: "developer.next-engine.com/faq; Hamee bulk-update app retries after reloading",
    },
    // Hamee's template reads 002003 as a suspension; third-party code calls it
    // "refresh failed". An answer with `result: "redirect"` is a token error
    // whatever its code (see `classify`), so both readings end where they should.
    NeCode {
        code: "002003",
        class: CodeClass::Suspended,
        meaning: "[xxxxx]様のネクストエンジンが、次の理由により利用停止になっています。",
        source: HAMEE_ROUTER,
    },
    NeCode {
        code: "002004",
        class: CodeClass::Token,
        meaning: "tokens invalid, most likely the refresh token expired (inferred); no tokens in the answer",
        source: "developer.next-engine.com/faq",
    },
    NeCode {
        code: "002007",
        class: CodeClass::Busy,
        meaning: "ネクストエンジンサーバーがメンテナンス中",
        source: HAMEE_ROUTER,
    },
    NeCode {
        code: "003001",
        class: CodeClass::Busy,
        meaning: "メイン機能サーバーが混み合っております (wait_flag=1 gave up)",
        source: "developer.next-engine.com/api/param/common; Hamee router.php",
    },
    NeCode {
        code: "003002",
        class: CodeClass::Busy,
        meaning: "メイン機能サーバーが混み合っております (wait_flag not 1)",
        source: "developer.next-engine.com/api/param/common; Hamee router.php",
    },
    NeCode {
        code: "003003",
        class: CodeClass::Suspended,
        meaning: "[xxxxx]様のメイン機能が、利用停止です。",
        source: HAMEE_ROUTER,
    },
    NeCode {
        code: "003004",
        class: CodeClass::Busy,
        meaning: "メイン機能サーバーがメンテナンス中",
        source: HAMEE_ROUTER,
    },
    NeCode {
        code: "003005",
        class: CodeClass::Busy,
        meaning: "main function maintenance (no text found)",
        source: HAMEE_BULK,
    },
    NeCode {
        code: "004001",
        class: CodeClass::Refused,
        meaning: "the app lacks permission for this API (「アプリを作る」→ API tab)",
        source: "third-party GAS (single source), reference §2.2",
    },
    NeCode {
        code: "008003",
        class: CodeClass::Busy,
        meaning: "受注取込中のため、更新出来ません。",
        source: HAMEE_ROUTER,
    },
    NeCode {
        code: "008007",
        class: CodeClass::Busy,
        meaning: "納品書印刷中の伝票があります。時間を空けて再度APIを実行して下さい。",
        source: HAMEE_ROUTER,
    },
    NeCode {
        code: "008010",
        class: CodeClass::Busy,
        meaning: "棚卸中のため、更新出来ません。",
        source: HAMEE_ROUTER,
    },
    // The ne_api gem retries these, but nobody says what they mean, so they
    // do not prove that an upload was left undone: not retried.
    NeCode {
        code: "009005",
        class: CodeClass::Refused,
        meaning: "unknown; retried as busy by the ne_api gem",
        source: "infinity-octaver/ne_api lib/ne_api.rb (reference §2.2)",
    },
    NeCode {
        code: "011007",
        class: CodeClass::Refused,
        meaning: "unknown; retried as busy by the ne_api gem",
        source: "infinity-octaver/ne_api lib/ne_api.rb (reference §2.2)",
    },
    // Hamee sends the operator to support; whether the call ran is unknown,
    // so it is not retried (an upload might then be counted twice).
    NeCode {
        code: "999999",
        class: CodeClass::Refused,
        meaning: "APIサーバーのシステムエラーが発生しました。 (no tokens in the answer)",
        source: "developer.next-engine.com/faq; Hamee router.php",
    },
];

pub fn lookup(code: &str) -> Option<&'static NeCode> {
    CODES.iter().find(|c| c.code == code.trim())
}

pub fn class_of(code: &str) -> CodeClass {
    lookup(code).map_or(CodeClass::Refused, |c| c.class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_well_formed() {
        for (i, c) in CODES.iter().enumerate() {
            assert!(
                c.code.len() == 6 && c.code.bytes().all(|b| b.is_ascii_digit()),
                "{c:?}"
            );
            assert!(!c.meaning.is_empty() && !c.source.is_empty(), "{c:?}");
            assert!(
                CODES[i + 1..].iter().all(|d| d.code != c.code),
                "{} listed twice",
                c.code
            );
        }
    }

    #[test]
    fn each_class_has_its_codes() {
        let of = |class| -> Vec<&str> {
            CODES
                .iter()
                .filter(|c| c.class == class)
                .map(|c| c.code)
                .collect()
        };
        assert_eq!(
            of(CodeClass::Busy),
            [
                "000001", "002007", "003001", "003002", "003004", "003005", "008003", "008007",
                "008010"
            ]
        );
        assert_eq!(of(CodeClass::StaleToken), ["002002"]);
        assert_eq!(of(CodeClass::Token), ["002001", "002004"]);
        assert_eq!(of(CodeClass::Suspended), ["001007", "002003", "003003"]);
        assert_eq!(class_of("999999"), CodeClass::Refused);
        assert_eq!(class_of("020500"), CodeClass::Refused);
        assert_eq!(class_of(" 008010 "), CodeClass::Busy);
    }
}

//! Guards the parsing rules of spec §4 and §9 one by one: the MALFORMED / INVALID /
//! VERSION_* mapping and its check order, what is tolerated (attribute order, BOM, XML
//! declaration, bare DOCTYPE, comments, PIs, white space, CDATA vs escaped text, unknown
//! classes) and what each error's reason says.

use crnp::protocol::{
    CallbackReg, Event, EventType, Limits, NvPair, ProtocolError, RegType, Reply, StatusCode,
};

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

fn reg(text: &str) -> Result<CallbackReg, ProtocolError> {
    CallbackReg::parse(text.as_bytes(), &Limits::default())
}

fn status(text: &str) -> StatusCode {
    match reg(text) {
        Ok(parsed) => panic!("expected an error for {text:?}, parsed {parsed:?}"),
        Err(error) => {
            assert!(!error.reason.is_empty());
            error.status
        }
    }
}

/// A registration with the given root attributes and content.
fn doc(attributes: &str, content: &str) -> String {
    if content.is_empty() {
        format!("{DECL}<SC_CALLBACK_REG {attributes}/>")
    } else {
        format!("{DECL}<SC_CALLBACK_REG {attributes}>{content}</SC_CALLBACK_REG>")
    }
}

const ADD: &str = r#"VERSION="1.0" PORT="8765" REG_TYPE="ADD_CLIENT""#;

fn add_client(content: &str) -> String {
    doc(ADD, content)
}

fn events(text: &str) -> Vec<EventType> {
    reg(text).unwrap_or_else(|e| panic!("{text:?}: {e}")).events
}

// ---- well-formedness: MALFORMED --------------------------------------------------------------

#[test]
fn not_well_formed_is_malformed() {
    for text in [
        "",
        "   ",
        "<",
        "<SC_CALLBACK_REG",
        "<SC_CALLBACK_REG PORT=8765 REG_TYPE=\"ADD_CLIENT\"/>",
        "<SC_CALLBACK_REG PORT=\"8765\"REG_TYPE=\"ADD_CLIENT\"/>",
        "<SC_CALLBACK_REG PORT=\"8765\" PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<SC_CALLBACK_REG PORT=\"8<765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\" flag/>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"></SC_CALLBACK_RE>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"><a></b></SC_CALLBACK_REG>",
        "<1SC PORT=\"8765\"/>",
        "< SC_CALLBACK_REG/>",
        "<SC_CALLBACK_REG 1PORT=\"8765\"/>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\">]]></SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\">&nbsp;</SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\">& </SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\">&#0;</SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\">&#xD800;</SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\">&#X41;</SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT=\"&#1;\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<SC_CALLBACK_REG PORT=\"&bogus;\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"><!-- a -- b --></SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"><![CDATA[x</SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"><?xml version=\"1.0\"?></SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"><?XmL x?></SC_CALLBACK_REG>",
        "<!doctype SC_CALLBACK_REG><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/><!DOCTYPE SC_CALLBACK_REG>",
        "<?xml version=\"2.0\"?><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<?xml encoding=\"UTF-8\"?><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<?xml version=\"1.0\" standalone=\"maybe\"?><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<?xml version=\"1.0\" foo=\"bar\"?><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<?xml version=\"1.0\"?><?xml version=\"1.0\"?><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "text<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "&amp;<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "<![CDATA[ ]]><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "</x><SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
        "\u{FEFF}\u{FEFF}<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>",
    ] {
        assert_eq!(status(text), StatusCode::Malformed, "{text:?}");
    }
}

#[test]
fn leading_white_space_before_the_declaration_is_malformed() {
    for space in [" ", "\n", "\t", "\r\n"] {
        let text = format!("{space}{}", add_client(""));
        let error = reg(&text).unwrap_err();
        assert_eq!(error.status, StatusCode::Malformed);
        assert!(error.reason.contains("XML declaration"), "{}", error.reason);
    }
}

#[test]
fn leading_white_space_without_a_declaration_is_allowed() {
    let text = format!("\n  <SC_CALLBACK_REG {ADD}/>");
    assert!(reg(&text).is_ok());
}

#[test]
fn trailing_bytes_after_the_root() {
    let base = add_client("");
    for ok in [
        "\n",
        "\r\n\t ",
        "<!-- bye -->",
        "<?done?>\n",
        "\n<!---->\n<?x y?>",
    ] {
        assert!(reg(&format!("{base}{ok}")).is_ok(), "{ok:?}");
    }
    for bad in [
        "x",
        "\n\0",
        "<a/>",
        "</SC_CALLBACK_REG>",
        "<",
        "&amp;",
        "<![CDATA[]]>",
        "\u{FEFF}",
    ] {
        let error = reg(&format!("{base}{bad}")).unwrap_err();
        assert_eq!(error.status, StatusCode::Malformed, "{bad:?}");
    }
    let error = reg(&format!("{base}garbage<more/>")).unwrap_err();
    assert!(
        error.reason.contains("after the root element"),
        "{}",
        error.reason
    );
}

#[test]
fn nul_and_control_bytes_are_malformed() {
    for bad in [
        "\0", "\u{1}", "\u{8}", "\u{B}", "\u{1F}", "\u{FFFE}", "\u{FFFF}",
    ] {
        let text = add_client(&format!("<SC_EVENT_REG CLASS=\"a{bad}\"/>"));
        let error = reg(&text).unwrap_err();
        assert_eq!(error.status, StatusCode::Malformed, "{bad:?}");
        assert!(error.reason.contains("not allowed"), "{}", error.reason);
    }
    let error = reg(&add_client("\0")).unwrap_err();
    assert!(error.reason.contains("NUL"), "{}", error.reason);
}

#[test]
fn non_utf8_is_malformed() {
    for bytes in [
        b"<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"><SC_EVENT_REG CLASS=\"\xE9\"/></SC_CALLBACK_REG>".to_vec(),
        b"\xFF\xFE<\0S\0".to_vec(),
        b"<SC_CALLBACK_REG PORT=\"8765\" REG_TYPE=\"ADD_CLIENT\"/>\xC3".to_vec(),
    ] {
        let error = CallbackReg::parse(&bytes, &Limits::default()).unwrap_err();
        assert_eq!(error.status, StatusCode::Malformed);
        assert!(error.reason.contains("UTF-8"), "{}", error.reason);
    }
}

#[test]
fn bom_and_declaration_variants_are_accepted() {
    let root = format!("<SC_CALLBACK_REG {ADD}/>");
    for prefix in [
        "\u{FEFF}",
        "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        "<?xml version=\"1.0\"?>",
        "<?xml version='1.0' encoding='utf-8' standalone='no'?>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>",
        "<?xml version = \"1.0\"  encoding = \"US-ASCII\" ?>\n",
        "<?xml version=\"1.1\"?>",
        "<!-- hello -->\n<?app data?>\n",
    ] {
        let text = format!("{prefix}{root}");
        assert!(reg(&text).is_ok(), "{text:?}: {:?}", reg(&text));
    }
}

#[test]
fn ascii_only_encodings_need_an_ascii_document() {
    let text = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><SC_CALLBACK_REG VERSION=\"1.0\" PORT=\"1\" REG_TYPE=\"ADD_CLIENT\"><SC_EVENT_REG CLASS=\"caf\u{e9}\"/></SC_CALLBACK_REG>";
    assert_eq!(status(text), StatusCode::Malformed);
    assert!(reg(&text.replace('\u{e9}', "e")).is_ok());
}

#[test]
fn bare_doctype_is_accepted_and_ignored() {
    for doctype in [
        "<!DOCTYPE SC_CALLBACK_REG>",
        "<!DOCTYPE SC_CALLBACK_REG SYSTEM \"http://example.invalid/crnp.dtd\">",
        "<!DOCTYPE SC_CALLBACK_REG PUBLIC \"-//SUN//CRNP\" 'crnp.dtd' >",
    ] {
        let text = format!("{DECL}\n{doctype}\n<SC_CALLBACK_REG {ADD}/>");
        assert!(reg(&text).is_ok(), "{text}: {:?}", reg(&text));
    }
}

#[test]
fn doctype_with_an_internal_subset_is_refused() {
    let text = format!(
        "{DECL}<!DOCTYPE SC_CALLBACK_REG [<!ATTLIST SC_CALLBACK_REG PORT CDATA \"1\">]><SC_CALLBACK_REG REG_TYPE=\"ADD_CLIENT\"/>"
    );
    let error = reg(&text).unwrap_err();
    assert_eq!(error.status, StatusCode::Malformed);
    assert!(error.reason.contains("internal subset"), "{}", error.reason);
}

// ---- check order -------------------------------------------------------------------------

#[test]
fn malformed_anywhere_beats_invalid() {
    // Wrong root, bad version, bad port... and a syntax error at the very end.
    let text = "<SC_EVENT VERSION=\"9\"><bogus/></SC_EVENT>trailing";
    assert_eq!(status(text), StatusCode::Malformed);
    let text = format!("{}<oops", doc(r#"VERSION="2.0" PORT="x""#, "<UNKNOWN/>"));
    assert_eq!(status(&text), StatusCode::Malformed);
    let text = doc(r#"VERSION="2.0" PORT="x""#, "<UNKNOWN/><a></b>");
    assert_eq!(status(&text), StatusCode::Malformed);
}

#[test]
fn root_name_beats_version() {
    let text = format!("{DECL}<SC_REG VERSION=\"2.0\" PORT=\"1\" REG_TYPE=\"ADD_CLIENT\"/>");
    let error = reg(&text).unwrap_err();
    assert_eq!(error.status, StatusCode::Invalid);
    assert!(error.reason.contains("SC_REG"), "{}", error.reason);
}

#[test]
fn version_beats_everything_else() {
    // Attribute order does not matter: VERSION is judged first.
    let text = doc(
        r#"PORT="eighty" REG_TYPE="NOPE" EXTRA="1" VERSION="2.0""#,
        "<UNKNOWN/>",
    );
    assert_eq!(status(&text), StatusCode::VersionTooHigh);
    let text = doc(r#"PORT="0" VERSION="0.9""#, "<SC_EVENT_REG/>");
    assert_eq!(status(&text), StatusCode::VersionTooLow);
}

// ---- VERSION -----------------------------------------------------------------------------

#[test]
fn version_rules() {
    let with = |version: &str| {
        doc(
            &format!(r#"VERSION="{version}" PORT="1" REG_TYPE="ADD_CLIENT""#),
            "",
        )
    };
    for equal in ["1.0", "1", "1.00", "01.0", "001.000"] {
        assert!(reg(&with(equal)).is_ok(), "{equal}");
    }
    for high in [
        "2.0",
        "1.1",
        "1.01",
        "10",
        "99999999999999999999999.0",
        "1.99999999999999999999",
    ] {
        assert_eq!(status(&with(high)), StatusCode::VersionTooHigh, "{high}");
    }
    for low in ["0.9", "0", "0.0", "00.5"] {
        assert_eq!(status(&with(low)), StatusCode::VersionTooLow, "{low}");
    }
    for junk in [
        "", "one", "1.", ".5", "1.0.0", "+1.0", " 1.0", "1.0 ", "1,0", "v1", "-1",
    ] {
        let error = reg(&with(junk)).unwrap_err();
        assert_eq!(error.status, StatusCode::Invalid, "{junk:?}");
        assert!(error.reason.contains("VERSION"), "{}", error.reason);
    }
    // Missing VERSION is the #FIXED default, 1.0.
    assert!(reg(&doc(r#"PORT="1" REG_TYPE="ADD_CLIENT""#, "")).is_ok());
}

// ---- INVALID ------------------------------------------------------------------------------

#[test]
fn wrong_root_is_invalid() {
    for root in [
        "SC_EVENT",
        "SC_REPLY",
        "sc_callback_reg",
        "SC_CALLBACK_REGS",
    ] {
        let text = format!("{DECL}<{root} VERSION=\"1.0\" PORT=\"1\" REG_TYPE=\"ADD_CLIENT\"/>");
        let error = reg(&text).unwrap_err();
        assert_eq!(error.status, StatusCode::Invalid, "{root}");
        assert!(error.reason.contains("root element"), "{}", error.reason);
    }
}

#[test]
fn reg_type_rules() {
    for reg_type in RegType::ALL {
        let text = doc(&format!(r#"PORT="1" REG_TYPE="{}""#, reg_type.as_str()), "");
        assert_eq!(reg(&text).unwrap().reg_type, reg_type);
    }
    for bad in [
        "",
        "add_client",
        "UPDATE_CLIENT",
        " ADD_CLIENT",
        "ADD_CLIENT ",
    ] {
        let error = reg(&doc(&format!(r#"PORT="1" REG_TYPE="{bad}""#), "")).unwrap_err();
        assert_eq!(error.status, StatusCode::Invalid, "{bad:?}");
        assert!(error.reason.contains("REG_TYPE"), "{}", error.reason);
    }
    let error = reg(&doc(r#"PORT="1""#, "")).unwrap_err();
    assert!(error.reason.contains("REG_TYPE"), "{}", error.reason);
}

#[test]
fn port_rules() {
    let with = |port: &str| doc(&format!(r#"PORT="{port}" REG_TYPE="ADD_CLIENT""#), "");
    for (text, port) in [
        ("1", 1),
        ("65535", 65535),
        ("8765", 8765),
        ("08765", 8765),
        ("0000000000000001", 1),
    ] {
        assert_eq!(reg(&with(text)).unwrap().port, port, "{text}");
    }
    for bad in [
        "",
        "0",
        "00",
        "65536",
        "99999999999999999999",
        "-1",
        "+80",
        " 80",
        "80 ",
        "8a",
        "0x50",
        "eighty",
        "８０",
    ] {
        let error = reg(&with(bad)).unwrap_err();
        assert_eq!(error.status, StatusCode::Invalid, "{bad:?}");
        assert!(error.reason.contains("PORT"), "{}", error.reason);
    }
    let error = reg(&doc(r#"REG_TYPE="ADD_CLIENT""#, "")).unwrap_err();
    assert_eq!(error.status, StatusCode::Invalid);
    assert!(error.reason.contains("PORT"), "{}", error.reason);
}

#[test]
fn attribute_order_is_free() {
    for attributes in [
        r#"REG_TYPE="ADD_CLIENT" PORT="8765" VERSION="1.0""#,
        r#"PORT="8765" REG_TYPE="ADD_CLIENT" VERSION="1.0""#,
        "PORT='8765'\n\tREG_TYPE = 'ADD_CLIENT'\r\n VERSION='1.0'",
    ] {
        let parsed = reg(&doc(
            attributes,
            r#"<SC_EVENT_REG SUBCLASS="ESC_cluster_membership" CLASS="EC_Cluster"/>"#,
        ))
        .unwrap();
        assert_eq!(parsed.port, 8765);
        assert_eq!(parsed.events, vec![EventType::membership()]);
    }
}

#[test]
fn unknown_elements_and_attributes_are_invalid() {
    for content in [
        "<SC_EVENT/>",
        "<SC_EVENT_REG CLASS=\"EC_Cluster\"><NAME>x</NAME></SC_EVENT_REG>",
        "<SC_EVENT_REG CLASS=\"EC_Cluster\"><NVPAIR><NAME>a</NAME><VALUE>b</VALUE><EXTRA/></NVPAIR></SC_EVENT_REG>",
        "<SC_EVENT_REG CLASS=\"EC_Cluster\"><NVPAIR><NAME>a<b/></NAME><VALUE>b</VALUE></NVPAIR></SC_EVENT_REG>",
        "<SC_EVENT_REG CLASS=\"EC_Cluster\" COLOR=\"red\"/>",
        "<SC_EVENT_REG CLASS=\"EC_Cluster\"><NVPAIR TYPE=\"x\"><NAME>a</NAME><VALUE>b</VALUE></NVPAIR></SC_EVENT_REG>",
        "<SC_EVENT_REG CLASS=\"EC_Cluster\"><NVPAIR><NAME a=\"1\">a</NAME><VALUE>b</VALUE></NVPAIR></SC_EVENT_REG>",
        "text",
        "<![CDATA[ ]]>",
        "&#32;",
        "<SC_EVENT_REG CLASS=\"EC_Cluster\">x</SC_EVENT_REG>",
    ] {
        assert_eq!(
            status(&add_client(content)),
            StatusCode::Invalid,
            "{content}"
        );
    }
    let error = reg(&doc(&format!("{ADD} EXTRA=\"1\""), "")).unwrap_err();
    assert_eq!(error.status, StatusCode::Invalid);
    assert!(error.reason.contains("EXTRA"), "{}", error.reason);
}

#[test]
fn event_reg_needs_a_class() {
    let error = reg(&add_client(
        "<SC_EVENT_REG SUBCLASS=\"ESC_cluster_membership\"/>",
    ))
    .unwrap_err();
    assert_eq!(error.status, StatusCode::Invalid);
    assert!(error.reason.contains("CLASS"), "{}", error.reason);
}

#[test]
fn nvpair_structure() {
    let reg_with =
        |pair: &str| add_client(&format!("<SC_EVENT_REG CLASS=\"X\">{pair}</SC_EVENT_REG>"));
    for (bad, says) in [
        ("<NVPAIR/>", "NAME"),
        ("<NVPAIR><NAME>a</NAME></NVPAIR>", "VALUE"),
        ("<NVPAIR><VALUE>b</VALUE></NVPAIR>", "NAME"),
        ("<NVPAIR><VALUE>b</VALUE><NAME>a</NAME></NVPAIR>", "NAME"),
        (
            "<NVPAIR><NAME>a</NAME><NAME>a</NAME><VALUE>b</VALUE></NVPAIR>",
            "NAME",
        ),
        (
            "<NVPAIR><NAME>a</NAME><VALUE>b</VALUE><NAME>c</NAME></NVPAIR>",
            "NAME",
        ),
    ] {
        let error = reg(&reg_with(bad)).unwrap_err();
        assert_eq!(error.status, StatusCode::Invalid, "{bad}");
        assert!(error.reason.contains(says), "{bad}: {}", error.reason);
    }
    let parsed = events(&reg_with(
        "<NVPAIR>\n <NAME>a</NAME>\n <VALUE>1</VALUE><VALUE/><VALUE>3</VALUE>\n</NVPAIR>",
    ));
    assert_eq!(parsed[0].nvpairs, vec![NvPair::array("a", ["1", "", "3"])]);
}

#[test]
fn state_subclasses_need_exactly_one_name_pair() {
    let with = |subclass: &str, pairs: &str| {
        add_client(&format!(
            "<SC_EVENT_REG CLASS=\"EC_Cluster\" SUBCLASS=\"{subclass}\">{pairs}</SC_EVENT_REG>"
        ))
    };
    let pair = |name: &str, value: &str| {
        format!("<NVPAIR><NAME>{name}</NAME><VALUE>{value}</VALUE></NVPAIR>")
    };
    for (subclass, key) in [
        ("ESC_cluster_rg_state", "rg_name"),
        ("ESC_cluster_r_state", "r_name"),
    ] {
        for bad in [
            String::new(),
            pair("other", "x"),
            pair(key, "a") + &pair(key, "b"),
        ] {
            let error = reg(&with(subclass, &bad)).unwrap_err();
            assert_eq!(error.status, StatusCode::Invalid, "{subclass} {bad}");
            assert!(error.reason.contains(key), "{}", error.reason);
        }
        let ok = events(&with(
            subclass,
            &(pair(key, "web") + &pair("extra", "narrowing")),
        ));
        assert_eq!(ok[0].nvpairs.len(), 2);
        // Only for class EC_Cluster.
        let other_class = add_client(&format!(
            "<SC_EVENT_REG CLASS=\"EC_Other\" SUBCLASS=\"{subclass}\"/>"
        ));
        assert!(reg(&other_class).is_ok());
    }
}

#[test]
fn unknown_class_and_subclass_are_accepted() {
    let parsed = events(&add_client(
        "<SC_EVENT_REG CLASS=\"EC_Future\" SUBCLASS=\"ESC_whatever\"/><SC_EVENT_REG CLASS=\"EC_Other\"/>",
    ));
    assert_eq!(
        parsed,
        vec![
            EventType::new("EC_Future", Some("ESC_whatever"), vec![]),
            EventType::class_only("EC_Other")
        ]
    );
}

#[test]
fn an_empty_class_or_subclass_is_invalid_since_no_event_can_have_one() {
    for content in [
        "<SC_EVENT_REG CLASS=\"\"/>",
        "<SC_EVENT_REG CLASS=\"EC_Cluster\" SUBCLASS=\"\"/>",
    ] {
        let error = reg(&add_client(content)).expect_err(content);
        assert_eq!(error.status, StatusCode::Invalid, "{content}: {error:?}");
    }
}

#[test]
fn remove_client_ignores_its_event_list() {
    let text = doc(
        r#"VERSION="1.0" PORT="8765" REG_TYPE="REMOVE_CLIENT""#,
        "<SC_EVENT_REG CLASS=\"EC_Cluster\" SUBCLASS=\"ESC_cluster_rg_state\"/><SC_EVENT_REG CLASS=\"EC_Cluster\"/>",
    );
    assert_eq!(
        reg(&text).unwrap(),
        CallbackReg {
            port: 8765,
            reg_type: RegType::RemoveClient,
            events: vec![]
        }
    );
    // Structure is still checked.
    let text = doc(r#"PORT="8765" REG_TYPE="REMOVE_CLIENT""#, "<SC_EVENT_REG/>");
    assert_eq!(status(&text), StatusCode::Invalid);
}

#[test]
fn empty_event_lists_are_valid() {
    for reg_type in ["ADD_CLIENT", "ADD_EVENTS", "REMOVE_EVENTS"] {
        let attributes = format!(r#"PORT="1" REG_TYPE="{reg_type}""#);
        assert!(events(&doc(&attributes, "")).is_empty());
        assert!(events(&doc(&attributes, "\n  \n")).is_empty());
    }
}

// ---- text -----------------------------------------------------------------------------------

#[test]
fn text_may_be_plain_escaped_or_cdata() {
    let with_value = |value: &str| {
        add_client(&format!(
            "<SC_EVENT_REG CLASS=\"EC_Cluster\" SUBCLASS=\"ESC_cluster_rg_state\"><NVPAIR><NAME>rg_name</NAME><VALUE>{value}</VALUE></NVPAIR></SC_EVENT_REG>"
        ))
    };
    for (written, read) in [
        ("web-rg", "web-rg"),
        ("<![CDATA[web-rg]]>", "web-rg"),
        ("we<![CDATA[b-]]>rg", "web-rg"),
        ("a &lt;&gt;&amp;&apos;&quot; b", "a <>&'\" b"),
        ("&#65;&#x42;&#x1F600;", "AB\u{1F600}"),
        ("<![CDATA[<&>]]>", "<&>"),
        ("<![CDATA[]]]]><![CDATA[>]]>", "]]>"),
        ("a<!-- note -->b<?pi?>c", "abc"),
        ("", ""),
        ("<![CDATA[]]>", ""),
        ("  spaced  ", "  spaced  "),
        ("line\r\nbreak\rcr&#13;ref", "line\nbreak\ncr\rref"),
        ("<![CDATA[x\r\ny]]>", "x\ny"),
        ("caf\u{e9} \u{65e5}\u{672c}", "caf\u{e9} \u{65e5}\u{672c}"),
        ("]", "]"),
        ("]]", "]]"),
        ("a>b", "a>b"),
    ] {
        let parsed = events(&with_value(written));
        assert_eq!(
            parsed[0].nvpairs,
            vec![NvPair::scalar("rg_name", read)],
            "{written:?}"
        );
    }
}

#[test]
fn attribute_values_are_unescaped_and_normalized() {
    let with_class = |class: &str| add_client(&format!("<SC_EVENT_REG CLASS=\"{class}\"/>"));
    for (written, read) in [
        ("EC_Cluster", "EC_Cluster"),
        ("a&amp;b&lt;c&gt;d&quot;e&apos;f", "a&b<c>d\"e'f"),
        ("tab\there\nnl\r\ncrlf", "tab here nl crlf"),
        ("&#9;&#10;&#13;", "\t\n\r"),
        ("'single'", "'single'"),
    ] {
        assert_eq!(events(&with_class(written))[0].class, read, "{written:?}");
    }
    let single = add_client("<SC_EVENT_REG CLASS='say \"hi\"'/>");
    assert_eq!(events(&single)[0].class, "say \"hi\"");
}

// ---- SC_REPLY and SC_EVENT parsing -----------------------------------------------------------

#[test]
fn reply_rules() {
    let parse = |text: &str| Reply::parse(text.as_bytes(), &Limits::default());
    let reply = |attributes: &str, content: &str| {
        format!("{DECL}<SC_REPLY {attributes}>{content}</SC_REPLY>")
    };
    assert_eq!(
        parse(&reply(
            r#"STATUS_CODE="LOW_RESOURCES""#,
            "<SC_STATUS_MSG>full &amp; busy</SC_STATUS_MSG>"
        )),
        Ok(Reply::new(StatusCode::LowResource, "full & busy"))
    );
    assert_eq!(
        parse(&reply(
            r#"VERSION="1.0" STATUS_CODE="INVALID_XML""#,
            "<SC_STATUS_MSG/>"
        ))
        .map(|r| r.status),
        Ok(StatusCode::Invalid)
    );
    for (attributes, content, code) in [
        (r#"STATUS_CODE="OK""#, "", StatusCode::Invalid),
        (
            r#"STATUS_CODE="OK""#,
            "<SC_STATUS_MSG/><SC_STATUS_MSG/>",
            StatusCode::Invalid,
        ),
        (
            r#"STATUS_CODE="ok""#,
            "<SC_STATUS_MSG/>",
            StatusCode::Invalid,
        ),
        ("", "<SC_STATUS_MSG/>", StatusCode::Invalid),
        (
            r#"STATUS_CODE="OK" VERSION="3""#,
            "<SC_STATUS_MSG/>",
            StatusCode::VersionTooHigh,
        ),
        (
            r#"STATUS_CODE="OK""#,
            "<SC_STATUS_MSG>a</SC_STATUS_MSG>junk",
            StatusCode::Invalid,
        ),
        (
            r#"STATUS_CODE="OK""#,
            "<SC_STATUS_MSG>a",
            StatusCode::Malformed,
        ),
    ] {
        let error = parse(&reply(attributes, content)).unwrap_err();
        assert_eq!(error.status, code, "{attributes} {content}");
    }
    for code in StatusCode::ALL {
        assert_eq!(StatusCode::from_wire(code.as_str()), Some(code));
        assert_eq!(code.to_string(), code.as_str());
    }
}

#[test]
fn event_rules() {
    let parse = |text: &str| Event::parse(text.as_bytes(), &Limits::default());
    let event = |attributes: &str| format!("{DECL}<SC_EVENT {attributes}/>");
    let full = r#"VERSION="1.0" CLASS="EC_Cluster" SUBCLASS="ESC_cluster_membership" VENDOR="SUNW" PUBLISHER="rgm""#;
    assert_eq!(
        parse(&event(full)),
        Ok(Event::cluster("ESC_cluster_membership", vec![]))
    );
    for missing in ["CLASS", "SUBCLASS", "VENDOR", "PUBLISHER"] {
        let attributes = full
            .split(' ')
            .filter(|a| !a.starts_with(&format!("{missing}=")))
            .collect::<Vec<_>>()
            .join(" ");
        let error = parse(&event(&attributes)).unwrap_err();
        assert_eq!(error.status, StatusCode::Invalid);
        assert!(error.reason.contains(missing), "{}", error.reason);
    }
    let with_child = format!("{DECL}<SC_EVENT {full}><SC_EVENT_REG CLASS=\"x\"/></SC_EVENT>");
    assert_eq!(parse(&with_child).unwrap_err().status, StatusCode::Invalid);
    let reg_as_event = add_client("");
    assert_eq!(
        parse(&reg_as_event).unwrap_err().status,
        StatusCode::Invalid
    );
    let with_pairs = Event::cluster(
        "x",
        vec![NvPair::scalar("a", "1"), NvPair::scalar("a", "2")],
    );
    assert_eq!(with_pairs.value("a"), Some(&NvPair::scalar("a", "1")));
    assert_eq!(with_pairs.value("b"), None);
}

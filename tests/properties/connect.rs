//! CONNECT: the JSON decodes or is refused, the same whether read alone or through the parser,
//! and credentials pass only when they are exactly the configured ones.

use bytes::BytesMut;
use jetlog::protocol::connect::ConnectOptions;
use jetlog::protocol::{ClientOp, Parser, ParserLimits, ProtocolError};
use jetlog::server::auth::authorize;
use jetlog::server::{AuthConfig, UserAuth};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";
const TOKEN: &str = "t0ken";

/// `data` is the JSON a client put after `CONNECT `.
pub fn connect_json(data: &[u8]) {
    let direct = serde_json::from_slice::<ConnectOptions>(data);

    // The same bytes as a CONNECT line: the parser hands over everything after the separator
    // (leading spaces and tabs are separators), so decoding what it hands over must agree.
    let mut line = b"CONNECT ".to_vec();
    line.extend_from_slice(data);
    line.extend_from_slice(b"\r\n");
    let mut buf = BytesMut::from(&line[..]);
    // A limit above the line's length, so that only the content decides.
    let limits = ParserLimits {
        max_control_line_bytes: line.len(),
        ..ParserLimits::default()
    };
    let parsed = Parser::new(limits).next_op(&mut buf);
    let trimmed = trim_separators(data);
    if data.contains(&b'\n') {
        // The line ends at the first newline; what follows is another op.
    } else if trimmed.is_empty() {
        assert_eq!(parsed, Err(ProtocolError::UnknownOperation));
    } else {
        let Ok(Some(ClientOp::Connect(json))) = parsed else {
            panic!("a CONNECT line was not parsed as CONNECT: {parsed:?}");
        };
        assert_eq!(&json[..], trimmed);
        let via_parser = serde_json::from_slice::<ConnectOptions>(&json);
        assert_eq!(
            format!("{:?}", via_parser.as_ref().ok()),
            format!("{:?}", direct.as_ref().ok()),
        );
    }

    let Ok(opts) = direct else {
        return;
    };
    let user_matches = opts.user.as_deref() == Some(USER) && opts.pass.as_deref() == Some(PASSWORD);
    let token_matches = opts.auth_token.as_deref() == Some(TOKEN);
    let single = AuthConfig::UserPassword {
        user: USER.to_string(),
        password: PASSWORD.to_string(),
    };
    assert_eq!(authorize(&single, &opts, b"").is_some(), user_matches);
    assert_eq!(
        authorize(&AuthConfig::Token(TOKEN.to_string()), &opts, b"").is_some(),
        token_matches
    );
    // A user listed without a password connects with its name alone, as with nats-server
    // (an absent password compares as empty); a wrong password is still refused.
    let users = AuthConfig::Users(vec![
        UserAuth {
            user: "bob".to_string(),
            password: String::new(),
            permissions: None,
            ..UserAuth::default()
        },
        UserAuth {
            user: USER.to_string(),
            password: PASSWORD.to_string(),
            permissions: None,
            ..UserAuth::default()
        },
    ]);
    let bob_matches =
        opts.user.as_deref() == Some("bob") && matches!(opts.pass.as_deref(), None | Some(""));
    assert_eq!(
        authorize(&users, &opts, b"").is_some(),
        user_matches || bob_matches
    );
}

fn trim_separators(data: &[u8]) -> &[u8] {
    let start = data
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(data.len());
    &data[start..]
}

//! Who a client certificate names, for `tls { verify_and_map: true }`: the names a user entry
//! may match, in the order nats-server tries them (`checkClientTLSCertSubject`): e-mail
//! addresses, then DNS names, then URIs from the subject alternative names, then the subject
//! itself as Go prints a distinguished name (`RDNSequence.String`: the RDNs last first, short
//! names for the common attributes, `CN=alice,OU=eng,O=Acme`).

/// Short names Go gives the common attribute types; others are printed by OID.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("2.5.4.6", "C"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.17", "POSTALCODE"),
];

/// The names a certificate (DER) offers for mapping, most specific first; empty when it does
/// not parse.
pub fn identities(cert_der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return Vec::new();
    };
    let alt_names: Vec<GeneralName<'_>> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    let pick = |out: &mut Vec<String>, want: fn(&GeneralName<'_>) -> Option<String>| {
        out.extend(alt_names.iter().filter_map(want));
    };
    pick(&mut out, |n| match n {
        GeneralName::RFC822Name(email) => Some(email.to_string()),
        _ => None,
    });
    pick(&mut out, |n| match n {
        GeneralName::DNSName(dns) => Some(dns.to_string()),
        _ => None,
    });
    pick(&mut out, |n| match n {
        GeneralName::URI(uri) => Some(uri.to_string()),
        _ => None,
    });
    let subject = distinguished_name(cert.subject());
    if !subject.is_empty() {
        out.push(subject);
    }
    out
}

/// A subject as Go's `RDNSequence.String` prints it.
fn distinguished_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> =
        name.iter_rdn()
            .map(|rdn| {
                rdn.iter()
                    .map(|attribute| {
                        let oid = attribute.attr_type().to_id_string();
                        let kind = ATTRIBUTE_NAMES
                            .iter()
                            .find(|(id, _)| *id == oid)
                            .map_or(oid.as_str(), |(_, short)| short);
                        let value = attribute.as_str().map(str::to_string).unwrap_or_else(|_| {
                            String::from_utf8_lossy(attribute.as_slice()).into()
                        });
                        format!("{kind}={}", escape(&value))
                    })
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// Go's escaping of an attribute value: `,+"\<>;` always, a space first or last, `#` first.
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let escaped = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => i == 0 || i == last,
            '#' => i == 0,
            _ => false,
        };
        if escaped {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_as_go_escapes_them() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" #x "), "\\ #x\\ ");
        assert_eq!(escape("#x#"), "\\#x#");
    }
}

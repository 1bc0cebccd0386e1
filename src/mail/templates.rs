//! The mails: subject, plain text and HTML for each. Links are built only from the configured
//! public URL, never from anything in a request.

/// A rendered mail.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// What a template needs to know about the service.
#[derive(Debug, Clone)]
pub struct Branding<'a> {
    /// Shown in subjects and bodies.
    pub product: &'a str,
    /// `LATCHKEY_PUBLIC_URL`, without a trailing slash.
    pub public_url: &'a str,
}

/// "Confirm your email": the link to the confirmation page.
pub fn verification(brand: &Branding<'_>, token: &str) -> Rendered {
    let link = format!("{}/confirm-email?token={token}", brand.public_url);
    let product = brand.product;
    Rendered {
        subject: format!("Confirm your email for {product}"),
        text: format!(
            "Welcome to {product}.\n\nConfirm your email address by opening this link:\n\n{link}\n\n\
             The link works once, for 24 hours. If you did not sign up, ignore this mail.\n"
        ),
        html: page(
            brand,
            &format!(
                "<p>Welcome to {}.</p><p><a href=\"{link}\">Confirm your email address</a></p>\
                 <p>The link works once, for 24 hours. If you did not sign up, ignore this mail.</p>",
                escape(product)
            ),
        ),
    }
}

/// "Reset your password": a link, and a 6-digit code for apps that ask for one.
pub fn reset(brand: &Branding<'_>, token: &str, code: &str) -> Rendered {
    let link = format!("{}/reset-password?token={token}", brand.public_url);
    let product = brand.product;
    Rendered {
        subject: format!("Reset your {product} password"),
        text: format!(
            "Someone asked to reset the password of your {product} account.\n\n\
             Choose a new password here:\n\n{link}\n\nor enter this code in the app: {code}\n\n\
             The link and the code work once, for one hour; using one cancels the other.\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\n"
        ),
        html: page(
            brand,
            &format!(
                "<p>Someone asked to reset the password of your {} account.</p>\
                 <p><a href=\"{link}\">Choose a new password</a></p>\
                 <p>or enter this code in the app: <strong>{code}</strong></p>\
                 <p>The link and the code work once, for one hour; using one cancels the other. \
                 If you did not ask for this, ignore this mail: your password stays as it is.</p>",
                escape(product)
            ),
        ),
    }
}

/// "Password sign-in is suspended for today": too many wrong passwords from anywhere; a reset
/// link and code that work despite the suspension.
pub fn login_suspended(brand: &Branding<'_>, token: &str, code: &str) -> Rendered {
    let product = brand.product;
    let asked = format!("Someone asked to reset the password of your {product} account.");
    let asked_html = format!(
        "Someone asked to reset the password of your {} account.",
        escape(product)
    );
    let why = format!(
        "Signing in to your {product} account with its password is suspended for today:          someone tried too many wrong passwords. They did not get in. To sign in now,          choose a new password."
    );
    let why_html = escape(&why);
    let rendered = reset(brand, token, code);
    Rendered {
        subject: format!("Password sign-in to {product} is suspended for today"),
        text: rendered.text.replace(&asked, &why),
        html: rendered.html.replace(&asked_html, &why_html),
    }
}

/// "Your password was changed".
pub fn password_changed(brand: &Branding<'_>) -> Rendered {
    let product = brand.product;
    Rendered {
        subject: format!("Your {product} password was changed"),
        text: format!(
            "The password of your {product} account was just changed, and every other session \
             was signed out.\n\nIf this was not you, reset your password at once and contact support.\n"
        ),
        html: page(
            brand,
            &format!(
                "<p>The password of your {} account was just changed, and every other session was \
                 signed out.</p><p>If this was not you, reset your password at once and contact support.</p>",
                escape(product)
            ),
        ),
    }
}

/// "The second factors of your account changed": `what` says how (it may quote a passkey's
/// name, which the user chose: escaped in the HTML part).
pub fn factors_changed(brand: &Branding<'_>, what: &str) -> Rendered {
    let product = brand.product;
    Rendered {
        subject: format!("Security notice: the sign-in factors of your {product} account changed"),
        text: format!(
            "{what}.\n\nIf this was you, nothing needs doing. If not, reset your password at \
             once, sign in and review your account's security, and contact support.\n"
        ),
        html: page(
            brand,
            &format!(
                "<p>{}.</p><p>If this was you, nothing needs doing. If not, reset your password at \
                 once, sign in and review your account's security, and contact support.</p>",
                escape(what)
            ),
        ),
    }
}

/// "Someone tried to register with your address" (conceal mode).
pub fn registration_attempt(brand: &Branding<'_>) -> Rendered {
    let product = brand.product;
    Rendered {
        subject: format!("Someone tried to register with your address at {product}"),
        text: format!(
            "Someone tried to create a {product} account with your email address, which already \
             has one. No new account was made.\n\nIf it was you and you forgot your password, ask \
             for a reset in the app. If not, you need not do anything.\n"
        ),
        html: page(
            brand,
            &format!(
                "<p>Someone tried to create a {} account with your email address, which already has \
                 one. No new account was made.</p><p>If it was you and you forgot your password, ask \
                 for a reset in the app. If not, you need not do anything.</p>",
                escape(product)
            ),
        ),
    }
}

fn page(brand: &Branding<'_>, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:sans-serif;max-width:32rem;margin:auto;padding:1rem\">{body}</body></html>",
        escape(brand.product)
    )
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRAND: Branding<'static> = Branding {
        product: "Acme <Login>",
        public_url: "https://id.example.com/api",
    };

    #[test]
    fn links_follow_the_contract_and_the_public_url() {
        let verify = verification(&BRAND, "tok123");
        assert!(
            verify
                .text
                .contains("https://id.example.com/api/confirm-email?token=tok123")
        );
        assert!(
            verify
                .html
                .contains("https://id.example.com/api/confirm-email?token=tok123")
        );
        let reset = reset(&BRAND, "tok456", "012345");
        assert!(
            reset
                .text
                .contains("https://id.example.com/api/reset-password?token=tok456")
        );
        assert!(reset.text.contains("012345") && reset.html.contains("012345"));
    }

    #[test]
    fn the_product_name_is_escaped_in_html() {
        let changed = password_changed(&BRAND);
        assert!(changed.html.contains("Acme &lt;Login&gt;") && !changed.html.contains("<Login>"));
        assert!(changed.subject.contains("Acme <Login>"));
    }
}

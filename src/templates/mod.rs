//! Every mail and hosted page, rendered by minijinja from templates that are built into the
//! binary, in English and German. A file under `LATCHKEY_TEMPLATES_DIR` with a built-in
//! template's name replaces it. Values are escaped in every `.html` template. An override is
//! checked at start-up: it must have a built-in's name, parse, and render with that template's
//! variables. A broken one stops the service instead of sending a blank mail, and should an
//! override still fail on some value at run time, the built-in twin renders instead.

mod builtin;
mod mail;
mod page;

use builtin::BUILTIN;
pub use builtin::{builtin, names};
pub use mail::{FactorChange, Mail};
pub use page::{Flow, Page};

use minijinja::{Environment, UndefinedBehavior, Value, context};
use std::path::{Path, PathBuf};

/// A language the templates are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// English, the default.
    English,
    /// German.
    German,
}

impl Language {
    /// Every shipped language.
    pub const ALL: [Language; 2] = [Language::English, Language::German];

    /// The BCP 47 primary tag, which is also the folder of the language's templates.
    pub fn tag(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::German => "de",
        }
    }

    /// The shipped language of a BCP 47 tag (`de`, `de-AT`), if there is one.
    pub fn of_tag(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next()?;
        Language::ALL
            .into_iter()
            .find(|language| language.tag().eq_ignore_ascii_case(primary))
    }

    /// The shipped language an `Accept-Language` header prefers most (RFC 9110 weights), if
    /// it names one. Only the first 16 entries are read, so a huge header costs nothing more.
    pub fn preferred(accept_language: &str) -> Option<Language> {
        let mut best: Option<(u16, Language)> = None;
        for entry in accept_language.split(',').take(16) {
            let mut parts = entry.split(';');
            let Some(language) = parts.next().and_then(Language::of_tag) else {
                continue;
            };
            let weight = parts
                .find_map(|part| part.trim().strip_prefix("q="))
                .map_or(Some(1000), quality);
            if let Some(weight) = weight.filter(|w| *w > 0)
                && best.is_none_or(|(held, _)| weight > held)
            {
                best = Some((weight, language));
            }
        }
        best.map(|(_, language)| language)
    }
}

/// A `q` value in thousandths (`0.8` → 800); `None` when malformed.
fn quality(raw: &str) -> Option<u16> {
    let value: f32 = raw.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

/// What a template may say about the service.
#[derive(Debug, Clone)]
pub struct Brand {
    /// `LATCHKEY_PRODUCT_NAME`.
    pub product: String,
    /// `LATCHKEY_PUBLIC_URL`, without a trailing slash: every mailed link starts with it.
    pub public_url: String,
    /// The base path the pages are served under (their forms post there).
    pub base_path: String,
    /// The shortest new password, for the reset form.
    pub password_min_length: usize,
}

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

/// Why the templates cannot be used, or one could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// `LATCHKEY_TEMPLATES_DIR` cannot be read.
    #[error("cannot read LATCHKEY_TEMPLATES_DIR {}: {error}", .path.display())]
    Directory {
        /// The directory or file that could not be read.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file there has no built-in twin: a typo would otherwise be ignored in silence.
    #[error(
        "LATCHKEY_TEMPLATES_DIR holds {0}, which is not a template (`latchkey templates list` names them)"
    )]
    Unknown(String),
    /// A template does not parse or does not render.
    #[error("template {name}: {source}")]
    Broken {
        /// The template's name.
        name: String,
        /// What minijinja reported.
        source: minijinja::Error,
    },
}

/// The page stylesheet's name: the Content-Security-Policy allows exactly its text.
const STYLESHEET: &str = "layout/page.css";

/// The loaded templates, checked; shared behind an `Arc`.
#[derive(Debug)]
pub struct Templates {
    /// The built-ins with the operator's overrides.
    env: Environment<'static>,
    /// The built-ins alone.
    fallback: Environment<'static>,
    brand: Brand,
    stylesheet: String,
}

impl Templates {
    /// The built-in templates, each replaced by its file in `dir` when there is one; every
    /// template is rendered once with sample values before the service starts.
    pub fn load(dir: Option<&Path>, brand: Brand) -> Result<Templates, TemplateError> {
        let builtin: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(name, source)| ((*name).to_owned(), (*source).to_owned()))
            .collect();
        let mut sources = builtin.clone();
        if let Some(dir) = dir {
            for (name, source) in overrides(dir)? {
                let Some(slot) = sources.iter_mut().find(|(known, _)| *known == name) else {
                    return Err(TemplateError::Unknown(name));
                };
                slot.1 = source;
            }
        }
        let env = environment(sources)?;
        let stylesheet = render(&env, STYLESHEET, context! {})?;
        let templates = Templates {
            env,
            fallback: environment(builtin)?,
            brand,
            stylesheet: stylesheet.trim().to_owned(),
        };
        for env in [&templates.env, &templates.fallback] {
            for language in Language::ALL {
                for mail in Mail::samples() {
                    templates.try_mail(env, language, mail)?;
                }
                for page in Page::samples() {
                    templates.try_page(env, language, page)?;
                }
            }
        }
        Ok(templates)
    }

    /// `mail` in `language`: its subject (one line), text and HTML.
    pub fn mail(&self, language: Language, mail: Mail<'_>) -> Rendered {
        self.try_mail(&self.env, language, mail)
            .or_else(|error| {
                tracing::error!(%error, "a mail template failed; its built-in twin was used");
                self.try_mail(&self.fallback, language, mail)
            })
            .expect("the built-in templates render every mail (checked at start-up)")
    }

    /// `page` in `language`, a whole HTML document.
    pub fn page(&self, language: Language, page: Page<'_>) -> String {
        self.try_page(&self.env, language, page)
            .or_else(|error| {
                tracing::error!(%error, "a page template failed; its built-in twin was used");
                self.try_page(&self.fallback, language, page)
            })
            .expect("the built-in templates render every page (checked at start-up)")
    }

    fn try_mail(
        &self,
        env: &Environment<'_>,
        language: Language,
        mail: Mail<'_>,
    ) -> Result<Rendered, TemplateError> {
        let name = format!("{}/mail/{}", language.tag(), mail.name());
        let values = context! {
            ..mail.context(),
            ..context! { product => &self.brand.product, lang => language.tag() }
        };
        let subject = render(env, &format!("{name}.subject.txt"), values.clone())?;
        Ok(Rendered {
            // One line: a header cannot hold more.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: render(env, &format!("{name}.txt"), values.clone())?,
            html: render(env, &format!("{name}.html"), values)?,
        })
    }

    fn try_page(
        &self,
        env: &Environment<'_>,
        language: Language,
        page: Page<'_>,
    ) -> Result<String, TemplateError> {
        let name = format!("{}/pages/{}.html", language.tag(), page.name());
        let values = context! {
            ..page.context(),
            ..context! {
                product => &self.brand.product,
                lang => language.tag(),
                base_path => &self.brand.base_path,
                min_length => self.brand.password_min_length,
                // The operator's own stylesheet, allowed by its hash: not escaped.
                style => Value::from_safe_string(self.stylesheet.clone()),
            }
        };
        render(env, &name, values)
    }

    /// The text of the pages' stylesheet, which the Content-Security-Policy allows by hash.
    pub fn stylesheet(&self) -> &str {
        &self.stylesheet
    }

    /// The public URL mailed links start with.
    pub fn public_url(&self) -> &str {
        &self.brand.public_url
    }
}

/// An environment of `sources`: unknown variables are errors (never an empty string), and a
/// text keeps its final line break.
fn environment(sources: Vec<(String, String)>) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("the default delimiters are valid");
    env.set_syntax(syntax);
    for (name, source) in sources {
        env.add_template_owned(name.clone(), source)
            .map_err(|source| TemplateError::Broken { name, source })?;
    }
    Ok(env)
}

fn render(env: &Environment<'_>, name: &str, values: Value) -> Result<String, TemplateError> {
    env.get_template(name)
        .and_then(|template| template.render(values))
        .map_err(|source| TemplateError::Broken {
            name: name.to_owned(),
            source,
        })
}

/// Every file under `dir`, by its path relative to `dir` with `/` separators.
fn overrides(dir: &Path) -> Result<Vec<(String, String)>, TemplateError> {
    let unreadable = |error| TemplateError::Directory {
        path: dir.to_owned(),
        error,
    };
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .components()
                .map(|part| part.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let source = std::fs::read_to_string(&path).map_err(unreadable)?;
            found.push((name, source));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand() -> Brand {
        Brand {
            product: "Acme <Login>".into(),
            public_url: "https://id.example.com/api".into(),
            base_path: "/api".into(),
            password_min_length: 12,
        }
    }

    #[test]
    fn every_built_in_template_has_a_file_in_each_language() {
        let listed: Vec<&str> = names().collect();
        for language in ["en", "de"] {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates")
                .join(language);
            for (name, _) in overrides(&root).unwrap() {
                let name = format!("{language}/{name}");
                assert!(listed.contains(&name.as_str()), "{name} is not built in");
            }
        }
        let english = listed.iter().filter(|n| n.starts_with("en/")).count();
        let german = listed.iter().filter(|n| n.starts_with("de/")).count();
        assert_eq!(english, german);
    }

    #[test]
    fn values_are_escaped_in_html_and_left_alone_in_text() {
        let templates = Templates::load(None, brand()).unwrap();
        let mail = templates.mail(
            Language::English,
            Mail::FactorsChanged(FactorChange::PasskeyAdded("<img src=x>")),
        );
        assert!(mail.html.contains("&lt;img src=x&gt;") && !mail.html.contains("<img"));
        assert!(mail.html.contains("Acme &lt;Login&gt;") && !mail.html.contains("<Login>"));
        assert!(mail.text.contains("\"<img src=x>\""));
        assert!(mail.subject.contains("Acme <Login>"));
        assert!(!mail.subject.contains('\n'));
    }

    #[test]
    fn links_and_codes_reach_both_parts() {
        let templates = Templates::load(None, brand()).unwrap();
        let link = "https://id.example.com/api/reset-password?token=tok456";
        let mail = templates.mail(
            Language::German,
            Mail::Reset {
                link,
                code: "012345",
                suspended: false,
                sign_in_link: None,
            },
        );
        assert!(mail.text.contains(link), "{}", mail.text);
        assert!(mail.text.contains("012345") && mail.html.contains("012345"));
        assert!(mail.subject.starts_with("Setzen Sie Ihr Passwort"));
        assert!(mail.html.contains("lang=\"de\""));
    }

    #[test]
    fn accept_language_picks_the_most_preferred_shipped_language() {
        for (header, expected) in [
            ("de-DE,de;q=0.9,en;q=0.8", Some(Language::German)),
            (
                "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7",
                Some(Language::English),
            ),
            ("en;q=0.5, de;q=0.6", Some(Language::German)),
            ("de;q=0, en;q=0.1", Some(Language::English)),
            ("fr, it", None),
            ("de;q=2", None),
            ("", None),
        ] {
            assert_eq!(Language::preferred(header), expected, "{header}");
        }
        assert_eq!(Language::of_tag("de-AT"), Some(Language::German));
        assert_eq!(Language::of_tag("EN_gb"), Some(Language::English));
    }
}

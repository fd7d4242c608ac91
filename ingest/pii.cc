// PII redaction. Each kind is a PCRE2 pattern that finds candidates and a C++
// check that confirms them (Luhn, ISO 13616 mod-97, inet_pton, octet ranges,
// digit counts). What is matched, exactly:
//
// <PRIVATE_KEY>  "-----BEGIN [WORD ...]PRIVATE KEY[ BLOCK]-----" up to and
//     including the next "-----END [WORD ...]PRIVATE KEY[ BLOCK]-----", or to
//     the end of the text when no such line follows. Certificates and public
//     keys are left alone.
// <API_KEY>  AWS access key ids (AKIA|ASIA + 16 [A-Z0-9]); GitHub tokens
//     (ghp_|gho_|ghu_|ghs_|ghr_ + 36 alphanumerics; github_pat_ + 22 or more
//     [A-Za-z0-9_]); Slack tokens (xoxa-|xoxb-|xoxp-|xoxr-|xoxs- + 10 or more
//     [A-Za-z0-9-] with a digit); Google API keys (AIza + 35 [A-Za-z0-9_-]);
//     Stripe live keys (sk_live_|pk_live_|rk_live_ + 10 or more alphanumerics);
//     OpenAI-style keys (sk-, optionally sk-proj-|sk-svcacct-|sk-admin-, then
//     20 or more [A-Za-z0-9_-] with a digit, a capital and a small letter);
//     JWTs (eyJ... . eyJ... . signature, base64url). A key must stand alone:
//     no letter, digit or '_' before it, no letter, digit, '_' or '-' after it.
// <EMAIL>  a local part of 1-64 letters, digits, '_', '+', '-' and single
//     dots, not starting with a dot but possibly ending with one (old-style
//     "Gat.cash.out.@"), taken whole (it does not start right after one of
//     these bytes, nor after one and a dot), '@', one or more domain labels
//     (letters, digits, inner hyphens) and a letters-only TLD of 2-63
//     characters, not followed by a letter, digit or '-' and a letter or
//     digit. The rarer RFC 5322 local characters !#$%&'*/=?^`{|}~ are left
//     out so that a URL query ("/?u=bob@x.io") or a quote is not swallowed
//     ("O'Reilly.&.Ann@x.org" keeps "O'Reilly.&."; "and...bob@x.org" keeps
//     "and...").
//     Not matched: no TLD (user@localhost, a@[10.0.0.1]), a numeric last
//     label (Content-ID "part1.png@01C2.8DB5B6C0"), image and
//     file names whose "TLD" is a file extension (logo@2x.png), obfuscated
//     forms ("joe at example dot com"), non-ASCII addresses (only the ASCII
//     tail of "jörg@example.de" is matched).
// <IBAN>  two capitals, two digits and the rest of the BBAN, either solid
//     (GB82WEST12345698765432) or in groups of four separated by single
//     spaces (GB82 WEST 1234 5698 7654 32), capitals and digits only; the
//     country must be in kIbanLengths with exactly that length (a longer
//     spaced run is cut at a group boundary) and the ISO 13616 mod-97
//     check must give 1.
// <CREDIT_CARD>  13-19 digits, solid or grouped 4-4-4-x(-x) / 4-6-4 / 4-6-5
//     with one kind of separator (single space or single dash), no digit,
//     '.', ',', '+' or '-' attached before, no digit or [.,-]digit after;
//     the digits pass the Luhn check and start with a known issuer prefix at
//     a length that issuer uses (KnownCardIssuer).
// <IP_ADDRESS>  IPv6: a run of hex digits and colons (with an optional
//     dotted IPv4 tail) with two colons among its first two groups, not
//     touching letters, digits, '_', ':' or '.'; inet_pton(AF_INET6) accepts
//     it; it has a decimal digit, two or more non-empty groups and four or
//     more hex digits. So "fe80::1", "2001:db8::8a2e:370:7334" and
//     "::ffff:192.0.2.1" are matched; times (10:55:03), MAC addresses,
//     "std::string", "Face::Add", slices ("[::2]") and the bare loopback
//     "::1" are not.
//   IPv4: four dot-separated decimal octets 0-255 without leading zeros,
//     not part of a longer dotted number (1.2.3.4.5), not touching letters,
//     digits or '_', and not right after the word version, ver, release,
//     rel, v, build, firmware, rev, revision, section or chapter (",v 8.1.2.3"
//     in RCS ids; "Version: 2.0.0.6").
// <PHONE>  International: '+', a country code digit 1-9, then digits,
//     single separators (space, '.', '-') each followed by a digit or '(',
//     and parenthesized groups of 1-4 digits ("+44 (0)20 7946 0958"); 8 to 15
//     digits in all (a longer run is cut at its last spaces, or if it has
//     none at its last separators, until it fits; one that runs into an
//     earlier hit ends before it); no letter, digit, '_' or '+' before the
//     '+'. North American: area code 2xx-9xx, then 3 and 4 digits, written
//     as 555-123-4567 or 555.123.4567 (the same separator twice, optionally
//     after "1-" / "1." alike) or (555) 123-4567, (555)123.4567,
//     (555) 123 4567 (optionally after "1", "1 ", "1-" or "1."); no letter,
//     digit, '_', '.', '+' or '-' before, no letter, digit, '_' or [.-]digit
//     after.
//     Labelled: right after tel, telephone, phone, fax, mobile, mob, cell or
//     ph (any case, not inside a word; then optionally '.' or " number",
//     up to 3 spaces, ':' or '=', up to 3 spaces or tabs; "ph" only with the
//     '.', ':' or '=', so "pH 7.45 7.50 7.55" stays), a number written
//     like the international form without '+' ("Tel: 01 635 9760", "Fax:
//     03-3518-3299", "phone (084) 747 0952") with 7 to 15 digits, not a date
//     (yyyy-mm-dd, dd.mm.yyyy, mm/dd/yy); the label stays.
//     Not matched: unlabelled numbers without '+' and without these
//     separators (5551234567), unlabelled "555 123 4567", unlabelled
//     7-digit local numbers (555-1234), national numbers without a label
//     ("01 635 9760"), vanity numbers (1-800-FLOWERS), extensions ("x123"),
//     years, prices, dates (2002-01-02, 01/02/2002), times, version numbers
//     and IP addresses.
//
// Overlaps are resolved by a fixed order: private-key blocks, API keys,
// e-mail, IBAN, card, IPv6, IPv4, international phone, North American
// phone, labelled phone. Every pattern is searched in the original text; a
// candidate that overlaps an earlier hit is dropped, except that a phone
// number running into one ends before it.
//
// Patterns are compiled in byte mode, not PCRE2_UTF: every pattern and every
// lookaround uses ASCII only, so a match consists of ASCII bytes and starts
// and ends on a code point boundary; replacing it by an ASCII placeholder
// keeps valid UTF-8 valid, and invalid input cannot make PCRE2 read out of
// bounds (UTF mode with PCRE2_NO_UTF_CHECK would; without that flag PCRE2
// re-validates the rest of the text on every call).
#include "ingest/pii.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string_view>
#include <vector>

#include "common/log.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace streamlm {
namespace {

enum class Kind { kPrivateKey, kApiKey, kEmail, kIban, kCard, kIp, kPhone };

// The C++ check a candidate of each pattern must pass.
enum class Check {
  kSecret,
  kEmail,
  kIban,
  kCard,
  kIpv6,
  kIpv4,
  kPhoneIntl,
  kPhoneNanp,
  kPhoneLabelled,
};

const char* Placeholder(Kind kind) {
  switch (kind) {
    case Kind::kPrivateKey:
      return "<PRIVATE_KEY>";
    case Kind::kApiKey:
      return "<API_KEY>";
    case Kind::kEmail:
      return "<EMAIL>";
    case Kind::kIban:
      return "<IBAN>";
    case Kind::kCard:
      return "<CREDIT_CARD>";
    case Kind::kIp:
      return "<IP_ADDRESS>";
    case Kind::kPhone:
      return "<PHONE>";
  }
  return "";
}

constexpr char kPemBeginPattern[] = "-----BEGIN (?:[A-Z0-9]+ ){0,4}PRIVATE KEY(?: BLOCK)?-----";
constexpr char kPemEndPattern[] = "-----END (?:[A-Z0-9]+ ){0,4}PRIVATE KEY(?: BLOCK)?-----";

// API keys, one pattern per family: a pattern that starts with a literal
// lets the JIT skip ahead with SIMD, so prose costs almost nothing.
// Each key stands alone: no letter, digit or '_' before, no letter, digit,
// '_' or '-' after.
constexpr const char* kSecretPatterns[] = {
    // AWS access key id.
    "(?<![A-Za-z0-9_])A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9_-])",
    // GitHub classic and fine-grained tokens.
    "(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36}(?![A-Za-z0-9_-])",
    "(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,255}+(?![A-Za-z0-9_-])",
    // Slack.
    "(?<![A-Za-z0-9_])xox[abprs]-[A-Za-z0-9-]{10,250}+(?![A-Za-z0-9_-])",
    // Google API key.
    "(?<![A-Za-z0-9_])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])",
    // Stripe live keys.
    "(?<![A-Za-z0-9_])[spr]k_live_[A-Za-z0-9]{10,250}+(?![A-Za-z0-9_-])",
    // OpenAI-style.
    "(?<![A-Za-z0-9_])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,250}+(?![A-Za-z0-9_-])",
    // JWT: header.payload.signature, base64url.
    "(?<![A-Za-z0-9_])eyJ[A-Za-z0-9_-]{8,4096}+\\.eyJ[A-Za-z0-9_-]{8,4096}+"
    "\\.[A-Za-z0-9_-]{0,4096}+(?![A-Za-z0-9_-])",
};

// Searched only around each '@' (see Impl::Find).
constexpr char kEmailPattern[] =
    "(?<![A-Za-z0-9_+-])(?<![A-Za-z0-9_+-]\\.)"
    "[A-Za-z0-9_+-](?:[A-Za-z0-9_+-]|\\.(?!\\.)){0,63}+"
    "@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}"
    "(?![A-Za-z0-9]|-[A-Za-z0-9])";

constexpr char kIbanPattern[] =
    "(?<![A-Za-z0-9_])[A-Z]{2}[0-9]{2}"
    "(?:[A-Z0-9]{11,30}+|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)"
    "(?![A-Za-z0-9_])";

constexpr char kCardPattern[] =
    "(?<![A-Za-z0-9_.,+-])(?:"
    "[0-9]{13,19}+"
    "|[0-9]{4}([ -])[0-9]{4}\\1[0-9]{4}\\1[0-9]{1,4}+(?:\\1[0-9]{1,3}+)?"
    "|[0-9]{4}([ -])[0-9]{6}\\2[0-9]{4,5}+"
    ")(?![A-Za-z0-9_]|[.,-][0-9])";

// Searched only around each ':'; the first colon is at most 4 bytes in.
constexpr char kIpv6Pattern[] =
    "(?<![A-Za-z0-9_:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)"
    "[0-9A-Fa-f:]{2,39}+(?:\\.[0-9]{1,3}+){0,3}+"
    "(?![A-Za-z0-9_:]|\\.[0-9])";

constexpr char kIpv4Pattern[] =
    "(?<![A-Za-z0-9_.])(?:[0-9]{1,3}+\\.){3}[0-9]{1,3}+"
    "(?![A-Za-z0-9_]|\\.[0-9])";

constexpr char kPhoneIntlPattern[] =
    "(?<![A-Za-z0-9_+])\\+[1-9]"
    "(?:[0-9]|[ .-](?=[0-9(])|\\([0-9]{1,4}\\)){0,40}+"
    "(?![A-Za-z0-9_])";

constexpr char kPhoneNanpPattern[] =
    "(?<![A-Za-z0-9_.+-])(?:"
    "(?:1-)?[2-9][0-9]{2}-[0-9]{3}-[0-9]{4}"
    "|(?:1\\.)?[2-9][0-9]{2}\\.[0-9]{3}\\.[0-9]{4}"
    "|(?:1[ .-]?)?\\([2-9][0-9]{2}\\)[ .-]?[0-9]{3}[ .-][0-9]{4}"
    ")(?![A-Za-z0-9_]|[.-][0-9])";

// Any number written like a phone number; FollowsPhoneLabel() keeps those
// right after a label. (Searching for the number first is far faster than
// searching for the label words.)
constexpr char kPhoneLabelledPattern[] =
    "(?<![A-Za-z0-9_+.-])"
    "(?<=[A-Za-z.:=]|[A-Za-z.:=][ \\t]|[A-Za-z.:=][ \\t]{2}|[A-Za-z.:=][ \\t]{3})"
    "\\(?[0-9](?=[0-9 ().-]{6})"
    "(?:[0-9]|[ .-](?=[0-9(])|\\([0-9]{1,5}\\)|\\)){0,40}+"
    "(?![A-Za-z0-9_])";

// Lengths of the IBAN per ISO 13616 country code (SWIFT IBAN registry).
struct IbanLength {
  char country[3];
  int length;
};
constexpr IbanLength kIbanLengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
    {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
    {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
    {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20},
    {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
    {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31},
    {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

// Extensions of image and other files that are not top-level domains, so
// "logo@2x.png" is a file name, not an address.
constexpr const char* kFileExtensions[] = {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp",
                                           "ico", "tif", "tiff", "css", "js",  "json", "html",
                                           "htm", "php", "txt",  "pdf", "xml"};

// Words after which a number is a phone number.
constexpr const char* kPhoneLabels[] = {"tel",    "telephone", "phone", "fax",
                                        "mobile", "mob",       "cell",  "ph"};

// Words after which a dotted quad is a version or section number.
constexpr const char* kVersionWords[] = {"version",  "ver",     "v",        "release",
                                         "rel",      "build",   "firmware", "rev",
                                         "revision", "section", "chapter"};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlpha(char c) { return IsUpper(c) || IsLower(c); }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsLocalChar(char c) {
  return IsAlpha(c) || IsDigit(c) || c == '_' || c == '+' || c == '-' || c == '.';
}
char ToLower(char c) { return IsUpper(c) ? static_cast<char>(c + 32) : c; }

bool EqualsLower(std::string_view s, const char* word) {
  if (s.size() != std::strlen(word)) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (ToLower(s[i]) != word[i]) return false;
  }
  return true;
}

bool LuhnValid(const std::string& digits) {
  int sum = 0;
  bool twice = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = *it - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

// Issuer identification number ranges and the lengths each issuer uses.
bool KnownCardIssuer(const std::string& d) {
  const int n = static_cast<int>(d.size());
  auto prefix = [&](int k) {
    int v = 0;
    for (int i = 0; i < k; ++i) v = v * 10 + (d[i] - '0');
    return v;
  };
  const int p2 = prefix(2), p3 = prefix(3), p4 = prefix(4), p6 = prefix(6);
  if (d[0] == '4') return n == 13 || n == 16 || n == 19;                     // Visa
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return n == 16;  // Mastercard
  if (p2 == 34 || p2 == 37) return n == 15;                                  // Amex
  if (p4 == 5018 || p4 == 5020 || p4 == 5038 || p4 == 5893 || p4 == 6304 || p4 == 6759 ||
      (p4 >= 6761 && p4 <= 6763)) {
    return n >= 13;  // Maestro
  }
  if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649) || (p6 >= 622126 && p6 <= 622925)) {
    return n >= 16;  // Discover
  }
  if (p2 == 62) return n >= 16;                                                      // UnionPay
  if (p4 >= 3528 && p4 <= 3589) return n >= 16;                                      // JCB
  if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39) return n >= 14;  // Diners
  if (p4 >= 2200 && p4 <= 2204) return n >= 16;                                      // Mir
  return false;
}

bool CardValid(std::string_view m) {
  std::string digits;
  for (char c : m) {
    if (IsDigit(c)) digits.push_back(c);
  }
  return digits.size() >= 13 && digits.size() <= 19 && KnownCardIssuer(digits) && LuhnValid(digits);
}

int IbanLengthOf(std::string_view country) {
  for (const IbanLength& e : kIbanLengths) {
    if (country == e.country) return e.length;
  }
  return 0;
}

// ISO 13616: the first four characters moved to the end, letters as 10..35,
// the number mod 97 is 1.
bool IbanChecksumValid(const std::string& iban) {
  std::string moved = iban.substr(4) + iban.substr(0, 4);
  int r = 0;
  for (char c : moved) {
    r = IsDigit(c) ? (r * 10 + (c - '0')) % 97 : (r * 100 + (c - 'A' + 10)) % 97;
  }
  return r == 1;
}

// A spaced run longer than the country's length is cut at the group
// boundary that gives that length, if there is one.
bool IbanValid(std::string_view text, size_t start, size_t* end) {
  const int want = IbanLengthOf(text.substr(start, 2));
  if (want == 0) return false;
  std::string iban;
  size_t i = start;
  for (; i < *end && static_cast<int>(iban.size()) < want; ++i) {
    if (text[i] != ' ') iban.push_back(text[i]);
  }
  if (static_cast<int>(iban.size()) != want) return false;
  if (i < *end && text[i] != ' ') return false;  // cut inside a group
  if (!IbanChecksumValid(iban)) return false;
  *end = i;
  return true;
}

bool EmailValid(std::string_view m) {
  std::string_view tld = m.substr(m.rfind('.') + 1);
  for (const char* ext : kFileExtensions) {
    if (EqualsLower(tld, ext)) return false;
  }
  return true;
}

bool SecretValid(std::string_view m) {
  bool digit = false, upper = false, lower = false;
  auto scan = [&](std::string_view body) {
    for (char c : body) {
      digit |= IsDigit(c);
      upper |= IsUpper(c);
      lower |= IsLower(c);
    }
  };
  if (m.substr(0, 3) == "xox") {
    scan(m.substr(5));
    return digit;
  }
  if (m.substr(0, 3) == "sk-") {
    scan(m.substr(3));
    return digit && upper && lower;
  }
  return true;
}

// The letters-only word that ends at `end` (at most 10 letters, not inside a
// longer word), or "".
std::string_view WordBefore(std::string_view text, size_t end) {
  size_t i = end;
  while (i > 0 && end - i <= 10 && IsAlpha(text[i - 1])) --i;
  if (i > 0 && IsAlpha(text[i - 1])) return {};
  return text.substr(i, end - i);
}

bool PrecededByVersionWord(std::string_view text, size_t start) {
  size_t i = start;
  for (int k = 0;
       k < 2 && i > 0 && (text[i - 1] == ' ' || text[i - 1] == '=' || text[i - 1] == ':'); ++k) {
    --i;
  }
  if (i == start) return false;
  std::string_view word = WordBefore(text, i);
  for (const char* w : kVersionWords) {
    if (EqualsLower(word, w)) return true;
  }
  return false;
}

// "ph" counts only with punctuation ("Ph: ", "Ph. "), not in "pH 7.45 7.50".
bool FollowsPhoneLabel(std::string_view text, size_t start) {
  size_t i = start;
  bool punctuated = false;
  auto skip_blanks = [&] {
    for (int k = 0; k < 3 && i > 0 && (text[i - 1] == ' ' || text[i - 1] == '\t'); ++k) --i;
  };
  skip_blanks();
  if (i > 0 && (text[i - 1] == ':' || text[i - 1] == '=')) {
    --i;
    punctuated = true;
    skip_blanks();
  }
  if (i > 0 && text[i - 1] == '.') {
    --i;
    punctuated = true;
  }
  std::string_view word = WordBefore(text, i);
  if (EqualsLower(word, "ph")) return punctuated;
  if (EqualsLower(word, "number")) {
    i -= word.size();
    if (i > 0 && text[i - 1] == ' ') --i;
    word = WordBefore(text, i);
  }
  for (const char* label : kPhoneLabels) {
    if (EqualsLower(word, label)) return true;
  }
  return false;
}

bool Ipv4Valid(std::string_view text, size_t start, size_t end) {
  std::string_view m = text.substr(start, end - start);
  size_t pos = 0;
  for (int octet = 0; octet < 4; ++octet) {
    size_t dot = m.find('.', pos);
    if (dot == std::string_view::npos) dot = m.size();
    std::string_view part = m.substr(pos, dot - pos);
    if (part.size() > 1 && part[0] == '0') return false;
    int v = 0;
    for (char c : part) v = v * 10 + (c - '0');
    if (v > 255) return false;
    pos = dot + 1;
  }
  return !PrecededByVersionWord(text, start);
}

bool Ipv6Valid(std::string_view m) {
  if (m.size() > 45) return false;
  std::string s(m);
  unsigned char buf[16];
  if (inet_pton(AF_INET6, s.c_str(), buf) != 1) return false;
  int groups = 0, hex_digits = 0;
  bool decimal = false, in_group = false;
  for (char c : m) {
    if (c == ':') {
      in_group = false;
      continue;
    }
    if (!in_group) ++groups;
    in_group = true;
    decimal |= IsDigit(c);
    hex_digits += IsHex(c);
  }
  return decimal && groups >= 2 && hex_digits >= 4;
}

bool IsPhoneSeparator(char c) { return c == ' ' || c == '.' || c == '-' || c == '('; }

// `min_digits` to 15 digits (E.164 allows at most 15); a longer run loses
// trailing groups until it fits: from its last space if it has one ("+44 20
// 7946 0958 10.0.0.1"), else from its last separator.
bool PhoneDigitsValid(std::string_view text, size_t start, size_t* end, int min_digits) {
  while (true) {
    while (*end > start && IsPhoneSeparator(text[*end - 1])) --*end;
    int digits = 0;
    bool space = false;
    for (size_t i = start; i < *end; ++i) {
      digits += IsDigit(text[i]);
      space |= text[i] == ' ';
    }
    if (digits <= 15) return digits >= min_digits;
    size_t cut = *end;
    while (cut > start && (space ? text[cut - 1] != ' ' : !IsPhoneSeparator(text[cut - 1]))) {
      --cut;
    }
    if (cut <= start + 1) return false;
    *end = cut - 1;
  }
}

// True for dates: yyyy-mm-dd, dd.mm.yy(yy), mm/dd/yy(yy) and alike, with one
// separator ('.', '/' or '-') used twice.
bool LooksLikeDate(std::string_view m) {
  int len[3] = {0, 0, 0};
  int group = 0;
  char sep = 0;
  for (char c : m) {
    if (IsDigit(c)) {
      ++len[group];
      continue;
    }
    if ((c != '.' && c != '/' && c != '-') || (sep != 0 && c != sep) || group == 2) return false;
    sep = c;
    ++group;
  }
  if (group != 2) return false;
  auto day_or_month = [](int n) { return n == 1 || n == 2; };
  return (len[0] == 4 && day_or_month(len[1]) && day_or_month(len[2])) ||
         (day_or_month(len[0]) && day_or_month(len[1]) && (len[2] == 2 || len[2] == 4));
}

bool Valid(Check check, std::string_view text, size_t start, size_t* end) {
  std::string_view m = text.substr(start, *end - start);
  switch (check) {
    case Check::kSecret:
      return SecretValid(m);
    case Check::kEmail:
      return EmailValid(m);
    case Check::kIban:
      return IbanValid(text, start, end);
    case Check::kCard:
      return CardValid(m);
    case Check::kIpv6:
      return Ipv6Valid(m);
    case Check::kIpv4:
      return Ipv4Valid(text, start, *end);
    case Check::kPhoneIntl:
      return PhoneDigitsValid(text, start, end, 8);
    case Check::kPhoneNanp:
      return true;
    case Check::kPhoneLabelled:
      return FollowsPhoneLabel(text, start) && PhoneDigitsValid(text, start, end, 7) &&
             !LooksLikeDate(text.substr(start, *end - start));
  }
  return false;
}

bool HasDigit(std::string_view t) {
  for (char c : t) {
    if (IsDigit(c)) return true;
  }
  return false;
}

pcre2_code* CompileOrDie(const char* pattern, uint32_t flags) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                   flags, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    SLM_LOG(kError) << "PII pattern does not compile at " << offset << ": "
                    << reinterpret_cast<const char*>(msg) << " in " << pattern;
    std::abort();  // the patterns are constants: a bug, not an input error
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter
  return code;
}

struct Hit {
  size_t start;
  size_t end;
  Kind kind;
};

// Hits sorted by start, never overlapping.
class HitList {
 public:
  bool Overlaps(size_t start, size_t end) const {
    auto it = std::lower_bound(hits_.begin(), hits_.end(), end,
                               [](const Hit& h, size_t e) { return h.start < e; });
    return it != hits_.begin() && std::prev(it)->end > start;
  }
  // Start of the first hit that ends after `start`, or npos.
  size_t NextHitStart(size_t start) const {
    auto it = std::upper_bound(hits_.begin(), hits_.end(), start,
                               [](size_t s, const Hit& h) { return s < h.end; });
    return it == hits_.end() ? std::string_view::npos : it->start;
  }
  void Add(const Hit& hit) {
    auto it = std::lower_bound(hits_.begin(), hits_.end(), hit.start,
                               [](const Hit& h, size_t s) { return h.start < s; });
    hits_.insert(it, hit);
  }
  const std::vector<Hit>& hits() const { return hits_; }

 private:
  std::vector<Hit> hits_;
};

}  // namespace

struct PiiRedactor::Impl {
  struct Pattern {
    Kind kind;
    Check check;
    pcre2_code* code;
    // When set, a match holds this byte, preceded by at most `back` bytes
    // for which `before_anchor` is true, and the search runs only around
    // each occurrence (memchr, then PCRE2 with an offset limit) instead of
    // over the whole text.
    char anchor;
    size_t back;
    bool (*before_anchor)(char);
    bool needs_digit;  // skipped for texts without an ASCII digit
  };

  pcre2_code* pem_begin = nullptr;
  pcre2_code* pem_end = nullptr;
  std::vector<Pattern> patterns;  // in overlap order

  ~Impl() {
    if (pem_begin) pcre2_code_free(pem_begin);
    if (pem_end) pcre2_code_free(pem_end);
    for (Pattern& p : patterns) pcre2_code_free(p.code);
  }

  // Adds every private-key block of `text`.
  void FindPrivateKeys(std::string_view text, pcre2_match_data* md, HitList* hits) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0;
    while ((pos = text.find("-----BEGIN ", pos)) != std::string_view::npos) {
      if (pcre2_match(pem_begin, subject, text.size(), pos, PCRE2_ANCHORED, md, nullptr) < 0) {
        pos += 1;
        continue;
      }
      size_t end = text.size();
      size_t e = pcre2_get_ovector_pointer(md)[1];
      while ((e = text.find("-----END ", e)) != std::string_view::npos) {
        if (pcre2_match(pem_end, subject, text.size(), e, PCRE2_ANCHORED, md, nullptr) >= 0) {
          end = pcre2_get_ovector_pointer(md)[1];
          break;
        }
        e += 1;
      }
      hits->Add({pos, end, Kind::kPrivateKey});
      pos = end;
    }
  }

  // Adds every confirmed candidate of `p` that does not overlap an earlier
  // hit. `mctx` carries the offset limit of anchored patterns.
  void Find(const Pattern& p, std::string_view text, pcre2_match_data* md,
            pcre2_match_context* mctx, HitList* hits) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0;     // no match starts before this
    size_t anchor = 0;  // no anchor byte before this is left to try
    while (pos < text.size()) {
      size_t from = pos;
      if (p.anchor != 0) {
        anchor = text.find(p.anchor, std::max(pos, anchor));
        if (anchor == std::string_view::npos) return;
        size_t low = anchor;
        while (low > 0 && anchor - low < p.back && p.before_anchor(text[low - 1])) --low;
        from = std::max(pos, low);
        pcre2_set_offset_limit(mctx, anchor);
      }
      int rc =
          pcre2_match(p.code, subject, text.size(), from, 0, md, p.anchor != 0 ? mctx : nullptr);
      if (rc == PCRE2_ERROR_NOMATCH && p.anchor != 0) {
        ++anchor;
        continue;
      }
      if (rc < 0) {
        if (rc != PCRE2_ERROR_NOMATCH) {
          SLM_LOG(kWarning) << "PII pattern " << static_cast<int>(p.check)
                            << " stopped with PCRE2 error " << rc;
        }
        return;
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t start = ov[0], end = ov[1];
      bool ok = Valid(p.check, text, start, &end);
      if (ok && (p.check == Check::kPhoneIntl || p.check == Check::kPhoneLabelled) &&
          hits->Overlaps(start, end)) {
        // A run of groups that reaches into an earlier hit ("+44 20 7946 0958
        // 10.0.0.1") ends before it.
        end = std::max(start, hits->NextHitStart(start));
        ok = Valid(p.check, text, start, &end);
      }
      if (ok && !hits->Overlaps(start, end)) {
        hits->Add({start, end, p.kind});
        pos = end;
      } else if (p.check == Check::kPhoneLabelled) {
        pos = std::max<size_t>(start + 1, ov[1]);  // no label inside a number
      } else {
        pos = start + 1;
      }
    }
  }
};

PiiRedactor::PiiRedactor(const PiiOptions& options)
    : options_(options), impl_(std::make_unique<Impl>()) {
  // Byte mode: see the note at the top of this file.
  impl_->pem_begin = CompileOrDie(kPemBeginPattern, 0);
  impl_->pem_end = CompileOrDie(kPemEndPattern, 0);
  auto add = [&](bool on, Kind kind, Check check, const char* pattern, char anchor = 0,
                 size_t back = 0, bool (*before_anchor)(char) = nullptr, bool needs_digit = true) {
    if (!on) return;
    // Anchored searches cover a few bytes each: PCRE2's start-up scans
    // (for a required later byte, up to thousands of bytes ahead) would cost
    // more than they save, and made "a@a@a@..." quadratic.
    uint32_t flags = anchor != 0 ? PCRE2_USE_OFFSET_LIMIT | PCRE2_NO_START_OPTIMIZE : 0;
    impl_->patterns.push_back(
        {kind, check, CompileOrDie(pattern, flags), anchor, back, before_anchor, needs_digit});
  };
  for (const char* key : kSecretPatterns) {
    add(options_.secrets, Kind::kApiKey, Check::kSecret, key, 0, 0, nullptr, /*needs_digit=*/false);
  }
  add(options_.email, Kind::kEmail, Check::kEmail, kEmailPattern, '@', 64, IsLocalChar, false);
  add(options_.iban, Kind::kIban, Check::kIban, kIbanPattern);
  add(options_.credit_card, Kind::kCard, Check::kCard, kCardPattern);
  add(options_.ip, Kind::kIp, Check::kIpv6, kIpv6Pattern, ':', 4, IsHex, false);
  add(options_.ip, Kind::kIp, Check::kIpv4, kIpv4Pattern);
  add(options_.phone, Kind::kPhone, Check::kPhoneIntl, kPhoneIntlPattern, '+');
  add(options_.phone, Kind::kPhone, Check::kPhoneNanp, kPhoneNanpPattern);
  add(options_.phone, Kind::kPhone, Check::kPhoneLabelled, kPhoneLabelledPattern);
}

PiiRedactor::~PiiRedactor() = default;

PiiCounts PiiRedactor::Redact(std::string& text) const {
  PiiCounts counts;
  if (!options_.enabled || text.empty()) return counts;
  const std::string_view view(text);
  const bool digit = HasDigit(view);

  // Enough pairs for the capture groups of every pattern.
  pcre2_match_data* md = pcre2_match_data_create(8, nullptr);
  pcre2_match_context* mctx = pcre2_match_context_create(nullptr);
  HitList hits;
  if (options_.secrets) impl_->FindPrivateKeys(view, md, &hits);
  for (const Impl::Pattern& p : impl_->patterns) {
    if (p.needs_digit && !digit) continue;
    impl_->Find(p, view, md, mctx, &hits);
  }
  pcre2_match_context_free(mctx);
  pcre2_match_data_free(md);
  if (hits.hits().empty()) return counts;

  std::string out;
  out.reserve(text.size());
  size_t last = 0;
  for (const Hit& h : hits.hits()) {
    out.append(text, last, h.start - last);
    out.append(Placeholder(h.kind));
    last = h.end;
    switch (h.kind) {
      case Kind::kPrivateKey:
        ++counts.private_key;
        break;
      case Kind::kApiKey:
        ++counts.api_key;
        break;
      case Kind::kEmail:
        ++counts.email;
        break;
      case Kind::kIban:
        ++counts.iban;
        break;
      case Kind::kCard:
        ++counts.credit_card;
        break;
      case Kind::kIp:
        ++counts.ip;
        break;
      case Kind::kPhone:
        ++counts.phone;
        break;
    }
  }
  out.append(text, last, std::string::npos);
  text = std::move(out);
  return counts;
}

}  // namespace streamlm

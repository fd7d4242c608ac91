#include "ingest/normalize.h"

#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <utf8proc.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/json_util.h"

namespace streamlm {
namespace {

// Decodes the code point at `i` of valid UTF-8 and advances `i`.
uint32_t NextCodePoint(std::string_view s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  uint32_t cp = c & (0x3F >> (len - 1));
  for (int k = 1; k < len && i + k < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  }
  i += len;
  return cp;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// CP1252 bytes 0x80..0x9F (0 where CP1252 leaves the byte undefined; those
// bytes show up as the C1 control of the same value when read as Latin-1).
constexpr uint16_t kCp1252High[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
    0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

// The byte a code point came from when UTF-8 was read as CP1252 (or
// Latin-1), or -1.
int Cp1252Byte(uint32_t cp) {
  if (cp < 0x80) return static_cast<int>(cp);
  if (cp <= 0xFF) return static_cast<int>(cp);  // Latin-1, incl. C1 controls
  for (int k = 0; k < 32; ++k) {
    if (kCp1252High[k] == cp) return 0x80 + k;
  }
  return -1;
}

std::string FixMojibakeOnce(std::string_view text, int* fixed) {
  // Every mojibake sequence starts with the Latin-1 reading of a UTF-8 lead
  // byte, U+00C2..U+00F4, encoded as C3 82..C3 B4.
  bool candidate = false;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (static_cast<unsigned char>(text[i]) == 0xC3) {
      auto n = static_cast<unsigned char>(text[i + 1]);
      if (n >= 0x82 && n <= 0xB4) {
        candidate = true;
        break;
      }
    }
  }
  if (!candidate) return std::string(text);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    uint32_t cp = NextCodePoint(text, i);
    if (cp >= 0xC2 && cp <= 0xF4) {
      int len = cp >= 0xF0 ? 4 : cp >= 0xE0 ? 3 : 2;
      char bytes[4] = {static_cast<char>(cp), 0, 0, 0};
      size_t j = i;
      bool ok = true;
      for (int k = 1; k < len && ok; ++k) {
        if (j >= text.size()) {
          ok = false;
          break;
        }
        int b = Cp1252Byte(NextCodePoint(text, j));
        ok = b >= 0x80 && b <= 0xBF;
        bytes[k] = static_cast<char>(b);
      }
      if (ok && IsValidUtf8(std::string_view(bytes, len))) {
        out.append(bytes, len);
        if (fixed != nullptr) ++*fixed;
        i = j;
        continue;
      }
    }
    out.append(text.substr(start, i - start));
  }
  return out;
}

void EnsureLibxmlInitialized() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

bool IsInvisible(uint32_t cp) {
  if (cp < 0x20) return cp != '\t' && cp != '\n' && cp != '\r';
  if (cp == 0x7F) return true;
  if (cp >= 0x80 && cp <= 0x9F) return true;
  switch (cp) {
    case 0x00AD: case 0x061C: case 0x180E: case 0x200B: case 0x200E: case 0x200F:
    case 0x2060: case 0xFEFF:
      return true;
    default:
      break;
  }
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

// Unicode space separators other than U+0020 (category Zs).
bool IsUnicodeSpace(uint32_t cp) {
  return cp == 0x00A0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

}  // namespace

std::string FixMojibake(std::string_view text, int* fixed) {
  if (fixed != nullptr) *fixed = 0;
  int n1 = 0;
  std::string once = FixMojibakeOnce(text, &n1);
  int n2 = 0;
  std::string twice = n1 > 0 ? FixMojibakeOnce(once, &n2) : once;
  if (fixed != nullptr) *fixed = n1 + n2;
  return twice;
}

std::string DecodeHtmlEntities(std::string_view text, int* decoded) {
  if (decoded != nullptr) *decoded = 0;
  if (text.find('&') == std::string_view::npos) return std::string(text);
  EnsureLibxmlInitialized();
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t amp = text.find('&', i);
    if (amp == std::string_view::npos) break;
    out.append(text.substr(i, amp - i));
    i = amp + 1;
    size_t semi = text.find(';', i);
    // Longest HTML 4 entity name is 8 characters; long numbers saturate.
    if (semi == std::string_view::npos || semi == i || semi - i > 32) {
      out.push_back('&');
      continue;
    }
    std::string_view body = text.substr(i, semi - i);
    int64_t cp = -1;
    if (body[0] == '#') {
      bool hex = body.size() > 1 && (body[1] == 'x' || body[1] == 'X');
      std::string_view digits = body.substr(hex ? 2 : 1);
      bool ok = !digits.empty();
      int64_t v = 0;
      for (char c : digits) {
        int d = absl::ascii_isdigit(static_cast<unsigned char>(c)) ? c - '0'
                : hex && absl::ascii_isxdigit(static_cast<unsigned char>(c))
                    ? absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10
                    : -1;
        if (d < 0) {
          ok = false;
          break;
        }
        v = v * (hex ? 16 : 10) + d;
        if (v > 0x10FFFF) v = 0x110000;  // saturate; replaced below
      }
      if (ok) {
        if (v >= 0x80 && v <= 0x9F && kCp1252High[v - 0x80] != 0) v = kCp1252High[v - 0x80];
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) v = 0xFFFD;
        cp = v;
      }
    } else {
      bool alnum = true;
      for (char c : body) alnum = alnum && absl::ascii_isalnum(static_cast<unsigned char>(c));
      if (alnum) {
        if (body == "apos") {
          cp = '\'';
        } else {
          std::string name(body);
          const htmlEntityDesc* e =
              htmlEntityLookup(reinterpret_cast<const xmlChar*>(name.c_str()));
          if (e != nullptr) cp = e->value;
        }
      }
    }
    if (cp < 0) {
      out.push_back('&');
      continue;
    }
    AppendUtf8(out, static_cast<uint32_t>(cp));
    if (decoded != nullptr) ++*decoded;
    i = semi + 1;
  }
  if (i < text.size()) out.append(text.substr(i));
  return out;
}

std::string StripInvisible(std::string_view text, int* removed) {
  if (removed != nullptr) *removed = 0;
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {  // printable ASCII: the common case
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    uint32_t cp = NextCodePoint(text, i);
    if (IsInvisible(cp)) {
      if (removed != nullptr) ++*removed;
      continue;
    }
    out.append(text.substr(start, i - start));
  }
  return out;
}

std::string UnicodeNormalize(std::string_view text, std::string_view form) {
  int options;
  if (form == "nfc") {
    options = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  } else if (form == "nfkc") {
    options = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
  } else {
    return std::string(text);
  }
  std::string out;
  out.reserve(text.size());
  size_t done = 0;  // text[0, done) is in `out`
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    // A span of non-ASCII characters, starting at the ASCII character before
    // it (a starter a combining mark may attach to) and ending before the
    // next ASCII character (ASCII never composes with what precedes it).
    size_t start = i > done ? i - 1 : i;
    size_t end = i;
    while (end < text.size() && static_cast<unsigned char>(text[end]) >= 0x80) ++end;
    out.append(text.substr(done, start - done));
    utf8proc_uint8_t* mapped = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + start),
                                      static_cast<utf8proc_ssize_t>(end - start), &mapped,
                                      static_cast<utf8proc_option_t>(options));
    if (n >= 0) {
      out.append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
    } else {
      out.append(text.substr(start, end - start));  // cannot happen on valid UTF-8
    }
    std::free(mapped);
    done = end;
    i = end;
  }
  out.append(text.substr(done));
  return out;
}

std::string NormalizeSpaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  int newlines = 0;
  bool pending_space = false;
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    uint32_t cp = NextCodePoint(text, i);
    if (cp == '\r') {
      if (i < text.size() && text[i] == '\n') continue;
      cp = '\n';
    }
    if (cp == 0x2028 || cp == 0x2029 || cp == 0x0B || cp == 0x0C) cp = '\n';
    if (cp == '\n') {
      pending_space = false;
      if (!out.empty() && newlines < 2) out.push_back('\n');
      ++newlines;
      continue;
    }
    if (cp == ' ' || cp == '\t' || IsUnicodeSpace(cp)) {
      pending_space = !out.empty() && newlines == 0;
      continue;
    }
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) continue;
    newlines = 0;
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.append(text.substr(start, i - start));
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool LooksLikeHtml(std::string_view text) {
  if (text.find('<') == std::string_view::npos) return false;
  static const char* const kElements[] = {
      "p",     "br",    "div", "span", "a",  "b",  "i",  "u",    "em",     "strong", "table",
      "tr",    "td",    "th",  "ul",   "ol", "li", "h1", "h2",   "h3",     "h4",     "h5",
      "h6",    "img",   "font", "center", "hr", "blockquote", "pre", "title", "meta", "link",
      "script", "style", "form", "input", "head", "tbody", "section", "article", "nav"};
  int tags = 0;
  for (size_t pos = text.find('<'); pos != std::string_view::npos;
       pos = text.find('<', pos + 1)) {
    const std::string_view after_lt = text.substr(pos + 1, 16);
    const absl::string_view rest(after_lt.data(), after_lt.size());
    if (absl::StartsWithIgnoreCase(rest, "html") || absl::StartsWithIgnoreCase(rest, "body") ||
        absl::StartsWithIgnoreCase(rest, "!doctype html")) {
      return true;
    }
    absl::string_view name = rest;
    if (!name.empty() && name[0] == '/') name.remove_prefix(1);
    size_t len = 0;
    while (len < name.size() && absl::ascii_isalnum(static_cast<unsigned char>(name[len]))) ++len;
    if (len == 0 || len == name.size()) continue;
    char after = name[len];
    if (after != '>' && after != ' ' && after != '/' && after != '\t' && after != '\n') continue;
    absl::string_view tag = name.substr(0, len);
    for (const char* e : kElements) {
      if (absl::EqualsIgnoreCase(tag, e)) {
        if (++tags >= 3) return true;
        break;
      }
    }
  }
  return false;
}

namespace {

bool IsSkippedElement(const char* name) {
  static const char* const kSkip[] = {"script", "style", "head",   "noscript", "template",
                                      "svg",    "iframe", "object", "select",   "math"};
  for (const char* s : kSkip) {
    if (std::strcmp(name, s) == 0) return true;
  }
  return false;
}

// 2 = paragraph break (blank line), 1 = line break, 0 = inline.
int BreakAround(const char* name) {
  static const char* const kParagraph[] = {
      "p",  "div", "h1", "h2",    "h3",      "h4",      "h5",     "h6",    "table", "ul",
      "ol", "dl",  "pre", "blockquote", "section", "article", "header", "footer", "form",
      "title", "hr", "main", "aside", "nav", "figure"};
  static const char* const kLine[] = {"br", "li", "tr", "dt", "dd", "caption", "option"};
  for (const char* s : kParagraph) {
    if (std::strcmp(name, s) == 0) return 2;
  }
  for (const char* s : kLine) {
    if (std::strcmp(name, s) == 0) return 1;
  }
  return 0;
}

// Ends `out` with at least `kind` newlines (and no spaces before them).
void AppendBreak(std::string& out, int kind) {
  while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
  if (out.empty()) return;
  int have = 0;
  for (size_t k = out.size(); k > 0 && out[k - 1] == '\n' && have < kind; --k) ++have;
  out.append(static_cast<size_t>(kind - have), '\n');
}

// Appends a text node. Outside <pre>, line breaks in the source are plain
// whitespace, as a browser renders them.
void AppendTextNode(std::string& out, const char* content, bool pre) {
  size_t start = out.size();
  out.append(content);
  if (pre) return;
  for (size_t k = start; k < out.size(); ++k) {
    if (out[k] == '\n' || out[k] == '\r' || out[k] == '\t') out[k] = ' ';
  }
}

void CollectText(xmlNode* node, std::string& out, int depth, bool pre) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      if (n->content != nullptr) AppendTextNode(out, reinterpret_cast<const char*>(n->content), pre);
      continue;
    }
    if (n->type != XML_ELEMENT_NODE || n->name == nullptr) continue;
    const char* name = reinterpret_cast<const char*>(n->name);
    if (IsSkippedElement(name)) continue;
    int brk = BreakAround(name);
    if (brk > 0) AppendBreak(out, brk);
    // libxml2 limits nesting itself; this bound keeps the recursion shallow
    // on hostile input regardless.
    if (depth < 512) {
      CollectText(n->children, out, depth + 1, pre || std::strcmp(name, "pre") == 0);
    }
    if (brk > 0) AppendBreak(out, brk);
  }
}

}  // namespace

std::optional<std::string> HtmlToText(std::string_view html) {
  EnsureLibxmlInitialized();
  if (html.size() > static_cast<size_t>(INT32_MAX)) return std::nullopt;
  htmlDocPtr doc = htmlReadMemory(html.data(), static_cast<int>(html.size()), nullptr, "UTF-8",
                                  HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                      HTML_PARSE_NONET | HTML_PARSE_COMPACT);
  if (doc == nullptr) return std::nullopt;
  std::string out;
  out.reserve(html.size() / 2);
  CollectText(xmlDocGetRootElement(doc), out, 0, false);
  xmlFreeDoc(doc);
  return out;
}

NormalizeResult NormalizeText(std::string_view raw, const NormalizeOptions& normalize,
                              const MarkupOptions& markup) {
  NormalizeResult r;
  NormalizeStats& st = r.stats;
  std::string text = ReplaceInvalidUtf8(raw, &st.invalid_bytes);
  if (st.invalid_bytes > 0 && normalize.enabled && normalize.invalid_utf8 == "reject") {
    r.reason = "invalid_utf8";
    r.detail = absl::StrCat(st.invalid_bytes, " bytes are not valid UTF-8");
    return r;
  }
  if (normalize.enabled && normalize.fix_mojibake) text = FixMojibake(text, &st.mojibake_fixed);
  bool html = markup.html == "always" || (markup.html == "auto" && LooksLikeHtml(text));
  if (html) {
    std::optional<std::string> t = HtmlToText(text);
    if (!t.has_value()) {
      r.reason = "bad_markup";
      r.detail = "the HTML parser could not read the record";
      return r;
    }
    st.was_html = true;
    // libxml2 passes bytes it cannot decode through; keep the output valid.
    text = ReplaceInvalidUtf8(*t);
  } else if (normalize.enabled && normalize.html_entities) {
    text = DecodeHtmlEntities(text, &st.entities_decoded);
  }
  if (normalize.enabled) {
    if (normalize.strip_controls) text = StripInvisible(text, &st.invisible_removed);
    text = UnicodeNormalize(text, normalize.unicode_form);
    if (normalize.whitespace) text = NormalizeSpaces(text);
  }
  if (text.empty() || absl::StripAsciiWhitespace(text).empty()) {
    r.reason = "empty";
    r.detail = "nothing left after cleaning";
    return r;
  }
  r.text = std::move(text);
  return r;
}

}  // namespace streamlm

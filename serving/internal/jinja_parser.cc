#include "serving/internal/jinja_parser.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace streamlm::jinja_internal {
namespace {

// Expression and statement nesting deeper than this is refused, so that a
// hostile template cannot exhaust the stack of the parser or interpreter.
constexpr int kMaxNesting = 100;

constexpr const char* kFilters[] = {
    "abs",    "capitalize", "count",   "d",     "default",    "first",     "float",
    "indent", "int",        "items",   "join",  "last",       "length",    "list",
    "lower",  "map",        "reject",  "rejectattr", "replace", "reverse",  "round",
    "safe",   "select",     "selectattr", "string", "title",  "tojson",    "trim",
    "unique", "upper"};
constexpr const char* kTests[] = {
    "defined", "undefined", "none",   "boolean", "true",    "false",       "integer",
    "float",   "number",    "string", "mapping", "iterable", "sequence",   "callable",
    "odd",     "even",      "divisibleby", "eq", "equalto", "ne",          "lt",
    "le",      "gt",        "ge",     "in",      "lower",   "upper",       "sameas"};

struct Token {
  enum class Type { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString,
                    kInt, kFloat, kOp, kEnd };
  Type type;
  std::string value;
  int line;
};

absl::Status SyntaxError(const std::string& what, int line) {
  return absl::InvalidArgumentError(absl::StrCat(what, " at line ", line));
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Splits the source into text and tag tokens, applying the whitespace rules.
class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Newlines are normalized to "\n" and one trailing newline is dropped,
    // as Jinja does (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_.push_back('\n');
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_.push_back(source[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  absl::StatusOr<std::vector<Token>> Run() {
    bool line_start = true;  // the next text starts a line
    while (pos_ < src_.size()) {
      size_t open = FindTagOpen(pos_);
      if (open > pos_) AddText(src_.substr(pos_, open - pos_), line_start);
      Advance(open);
      if (pos_ >= src_.size()) break;
      char kind = src_[pos_ + 1];  // '{', '%' or '#'
      int tag_line = line_;
      Advance(pos_ + 2);
      char modifier = pos_ < src_.size() ? src_[pos_] : '\0';
      if (modifier == '-' || modifier == '+') Advance(pos_ + 1);
      if (modifier == '-') {
        StripTrailing(/*all_whitespace=*/true);
      } else if (modifier != '+' && kind != '{') {
        StripTrailing(/*all_whitespace=*/false);  // lstrip_blocks
      }
      bool strip_after = false;
      if (kind == '#') {
        size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) return SyntaxError("unterminated comment", tag_line);
        strip_after = end > pos_ && src_[end - 1] == '-';
        Advance(end + 2);
      } else {
        tokens_.push_back({kind == '{' ? Token::Type::kVarBegin : Token::Type::kBlockBegin, "",
                           tag_line});
        absl::Status s = LexTagBody(kind == '{' ? '}' : '%', tag_line, &strip_after);
        if (!s.ok()) return s;
      }
      line_start = false;
      text_before_tag_ = false;
      if (strip_after) {
        size_t p = pos_;
        while (p < src_.size() && IsSpace(src_[p])) ++p;
        Advance(p);
      } else if (kind != '{' && pos_ < src_.size() && src_[pos_] == '\n') {
        Advance(pos_ + 1);  // trim_blocks
        line_start = true;
      }
    }
    tokens_.push_back({Token::Type::kEnd, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t FindTagOpen(size_t from) const {
    for (size_t p = from; p + 1 < src_.size(); ++p) {
      if (src_[p] == '{' && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) {
        return p;
      }
    }
    return src_.size();
  }

  void Advance(size_t to) {
    for (; pos_ < to && pos_ < src_.size(); ++pos_) {
      if (src_[pos_] == '\n') ++line_;
    }
  }

  void AddText(std::string text, bool line_start) {
    tokens_.push_back({Token::Type::kText, std::move(text), line_});
    text_line_start_ = line_start;
    text_before_tag_ = true;
  }

  // Strips the text just before a tag: all whitespace ("{%-"), or for
  // lstrip_blocks the spaces and tabs between the last line start and the tag.
  void StripTrailing(bool all_whitespace) {
    if (!text_before_tag_) return;
    std::string& text = tokens_.back().value;
    if (all_whitespace) {
      size_t n = text.size();
      while (n > 0 && IsSpace(text[n - 1])) --n;
      text.resize(n);
    } else {
      size_t l_pos = text.rfind('\n');
      l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
      if (l_pos == 0 && !text_line_start_) return;
      for (size_t i = l_pos; i < text.size(); ++i) {
        if (!IsSpace(text[i])) return;
      }
      text.resize(l_pos);
    }
    if (text.empty()) {
      tokens_.pop_back();
      text_before_tag_ = false;
    }
  }

  // Tokens up to and including the closing "}}" / "%}" (close = '}' / '%').
  absl::Status LexTagBody(char close, int tag_line, bool* strip_after) {
    int depth = 0;  // open brackets: a closer inside {...} is not the tag's end
    while (true) {
      while (pos_ < src_.size() && IsSpace(src_[pos_])) Advance(pos_ + 1);
      if (pos_ >= src_.size()) {
        return SyntaxError(close == '}' ? "unterminated '{{'" : "unterminated '{%'", tag_line);
      }
      char c = src_[pos_];
      if (depth == 0) {
        bool dash = c == '-';
        size_t p = pos_ + (dash ? 1 : 0);
        if (p + 1 < src_.size() && src_[p] == close && src_[p + 1] == '}') {
          *strip_after = dash;
          tokens_.push_back({close == '}' ? Token::Type::kVarEnd : Token::Type::kBlockEnd, "", line_});
          Advance(p + 2);
          return absl::OkStatus();
        }
      }
      int line = line_;
      if (IsNameStart(c)) {
        size_t p = pos_;
        while (p < src_.size() && (IsNameStart(src_[p]) || IsDigit(src_[p]))) ++p;
        tokens_.push_back({Token::Type::kName, src_.substr(pos_, p - pos_), line});
        Advance(p);
      } else if (IsDigit(c)) {
        absl::Status s = LexNumber();
        if (!s.ok()) return s;
      } else if (c == '\'' || c == '"') {
        absl::Status s = LexString();
        if (!s.ok()) return s;
      } else {
        static constexpr const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-",
                                               "*",  "/",  "%",  "~",  "<",  ">",  "=", "(",
                                               ")",  "[",  "]",  "{",  "}",  ",",  ".", ":", "|"};
        const char* match = nullptr;
        for (const char* op : kOps) {
          if (src_.compare(pos_, std::char_traits<char>::length(op), op) == 0) {
            match = op;
            break;
          }
        }
        if (match == nullptr) {
          return SyntaxError(absl::StrCat("unexpected character '", std::string(1, c), "'"), line);
        }
        std::string op = match;
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        tokens_.push_back({Token::Type::kOp, op, line});
        Advance(pos_ + op.size());
      }
    }
  }

  absl::Status LexNumber() {
    size_t p = pos_;
    auto digits = [&] {
      while (p < src_.size() && (IsDigit(src_[p]) || src_[p] == '_')) ++p;
    };
    digits();
    bool is_float = false;
    bool after_dot = !tokens_.empty() && tokens_.back().type == Token::Type::kOp &&
                     tokens_.back().value == ".";
    if (!after_dot && p + 1 < src_.size() && src_[p] == '.' && IsDigit(src_[p + 1])) {
      ++p;
      digits();
      is_float = true;
    }
    if (!after_dot && p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && IsDigit(src_[q])) {
        p = q;
        digits();
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = pos_; i < p; ++i) {
      if (src_[i] != '_') text.push_back(src_[i]);
    }
    tokens_.push_back({is_float ? Token::Type::kFloat : Token::Type::kInt, text, line_});
    Advance(p);
    return absl::OkStatus();
  }

  // A quoted string with Python's escapes; unknown escapes stay as written.
  absl::Status LexString() {
    int line = line_;
    char quote = src_[pos_];
    std::string value;
    size_t p = pos_ + 1;
    while (true) {
      if (p >= src_.size()) return SyntaxError("unterminated string literal", line);
      char c = src_[p];
      if (c == quote) break;
      if (c != '\\' || p + 1 >= src_.size()) {
        value.push_back(c);
        ++p;
        continue;
      }
      char e = src_[p + 1];
      p += 2;
      switch (e) {
        case 'n': value.push_back('\n'); break;
        case 't': value.push_back('\t'); break;
        case 'r': value.push_back('\r'); break;
        case 'b': value.push_back('\b'); break;
        case 'f': value.push_back('\f'); break;
        case 'v': value.push_back('\v'); break;
        case 'a': value.push_back('\a'); break;
        case '0': value.push_back('\0'); break;
        case '\\': value.push_back('\\'); break;
        case '\'': value.push_back('\''); break;
        case '"': value.push_back('"'); break;
        case '\n': break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (size_t i = 0; i < n; ++i) {
            if (p + i >= src_.size() || !IsHex(src_[p + i])) {
              return SyntaxError(absl::StrCat("bad \\", std::string(1, e), " escape in string"), line);
            }
            cp = cp * 16 + static_cast<uint32_t>(std::strtoul(std::string(1, src_[p + i]).c_str(), nullptr, 16));
          }
          p += n;
          AppendUtf8(cp, &value);
          break;
        }
        default:
          value.push_back('\\');
          value.push_back(e);
      }
    }
    tokens_.push_back({Token::Type::kString, std::move(value), line});
    Advance(p + 1);
    return absl::OkStatus();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool text_line_start_ = true;  // the last text token started a line
  bool text_before_tag_ = false;  // the last token is text directly before this tag
  std::vector<Token> tokens_;
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<std::unique_ptr<Program>> Run() {
    auto program = std::make_unique<Program>();
    std::string stop;
    absl::Status s = ParseBody({}, &program->body, &stop);
    if (!s.ok()) return s;
    return program;
  }

 private:
  using Type = Token::Type;

  const Token& Peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  Token Next() {
    Token t = Peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool IsOp(const char* op, size_t ahead = 0) const {
    return Peek(ahead).type == Type::kOp && Peek(ahead).value == op;
  }
  bool IsName(const char* name, size_t ahead = 0) const {
    return Peek(ahead).type == Type::kName && Peek(ahead).value == name;
  }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Type::kText: return "text";
      case Type::kVarBegin: return "'{{'";
      case Type::kVarEnd: return "'}}'";
      case Type::kBlockBegin: return "'{%'";
      case Type::kBlockEnd: return "'%}'";
      case Type::kEnd: return "end of template";
      case Type::kString: return "string literal";
      default: return "'" + t.value + "'";
    }
  }
  absl::Status Unexpected(const std::string& expected) const {
    return SyntaxError(absl::StrCat("expected ", expected, " but found ", Describe(Peek())),
                       Peek().line);
  }
  absl::Status ExpectOp(const char* op) {
    if (!IsOp(op)) return Unexpected(absl::StrCat("'", op, "'"));
    Next();
    return absl::OkStatus();
  }
  absl::Status ExpectBlockEnd() {
    if (Peek().type != Type::kBlockEnd) return Unexpected("'%}'");
    Next();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName(const char* what) {
    if (Peek().type != Type::kName) return Unexpected(what);
    return Next().value;
  }

  // Statements until a "{% word" in `stops` (consumed up to and including
  // the word, which goes to *stop) or, with no stops, the end.
  absl::Status ParseBody(const std::vector<std::string>& stops, Body* body, std::string* stop) {
    if (++depth_ > kMaxNesting) return SyntaxError("statements nested too deeply", Peek().line);
    while (true) {
      const Token& t = Peek();
      if (t.type == Type::kEnd) {
        --depth_;
        if (stops.empty()) return absl::OkStatus();
        return SyntaxError(absl::StrCat("missing '{% ", stops.back(), " %}'"), t.line);
      }
      if (t.type == Type::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = t.line;
        s->text = Next().value;
        body->push_back(std::move(s));
        continue;
      }
      if (t.type == Type::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = Next().line;
        auto e = ParseExpression();
        if (!e.ok()) return e.status();
        s->expr = std::move(*e);
        if (Peek().type != Type::kVarEnd) return Unexpected("'}}'");
        Next();
        body->push_back(std::move(s));
        continue;
      }
      if (t.type != Type::kBlockBegin) return Unexpected("text or a tag");
      int line = Next().line;
      if (Peek().type != Type::kName) return Unexpected("a statement name");
      std::string word = Peek().value;
      for (const std::string& s : stops) {
        if (word == s) {
          Next();
          *stop = word;
          --depth_;
          return absl::OkStatus();
        }
      }
      Next();
      absl::Status s = ParseStatement(word, line, body);
      if (!s.ok()) return s;
    }
  }

  absl::Status ParseStatement(const std::string& word, int line, Body* body) {
    auto stmt = std::make_unique<Stmt>();
    stmt->line = line;
    absl::Status s;
    if (word == "if") {
      s = ParseIf(stmt.get());
    } else if (word == "for") {
      s = ParseFor(stmt.get());
    } else if (word == "set") {
      s = ParseSet(stmt.get());
    } else if (word == "macro") {
      s = ParseMacro(stmt.get());
    } else if (word == "break" || word == "continue") {
      if (loop_depth_ == 0) return SyntaxError(absl::StrCat("'", word, "' outside a loop"), line);
      stmt->kind = word == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      s = ExpectBlockEnd();
    } else if (word == "generation" || word == "endgeneration") {
      // transformers' assistant-mask marker: renders as nothing.
      return ExpectBlockEnd();
    } else if (word.rfind("end", 0) == 0 || word == "elif" || word == "else") {
      return SyntaxError(absl::StrCat("unexpected '{% ", word, " %}'"), line);
    } else {
      return SyntaxError(absl::StrCat("unsupported statement '", word, "'"), line);
    }
    if (!s.ok()) return s;
    body->push_back(std::move(stmt));
    return absl::OkStatus();
  }

  absl::Status ParseIf(Stmt* stmt) {
    stmt->kind = Stmt::Kind::kIf;
    std::string stop = "elif";
    while (stop == "elif") {
      auto cond = ParseExpression();
      if (!cond.ok()) return cond.status();
      absl::Status s = ExpectBlockEnd();
      if (!s.ok()) return s;
      Body body;
      s = ParseBody({"elif", "else", "endif"}, &body, &stop);
      if (!s.ok()) return s;
      stmt->branches.emplace_back(std::move(*cond), std::move(body));
    }
    if (stop == "else") {
      absl::Status s = ExpectBlockEnd();
      if (!s.ok()) return s;
      Body body;
      s = ParseBody({"endif"}, &body, &stop);
      if (!s.ok()) return s;
      stmt->branches.emplace_back(nullptr, std::move(body));
    }
    return ExpectBlockEnd();
  }

  absl::Status ParseTargets(std::vector<std::string>* targets) {
    bool paren = IsOp("(");
    if (paren) Next();
    while (true) {
      auto name = ExpectName("a variable name");
      if (!name.ok()) return name.status();
      targets->push_back(*name);
      if (!IsOp(",")) break;
      Next();
    }
    return paren ? ExpectOp(")") : absl::OkStatus();
  }

  absl::Status ParseFor(Stmt* stmt) {
    stmt->kind = Stmt::Kind::kFor;
    absl::Status s = ParseTargets(&stmt->targets);
    if (!s.ok()) return s;
    if (!IsName("in")) return Unexpected("'in'");
    Next();
    auto iter = ParseConditional(/*allow_if=*/false);
    if (!iter.ok()) return iter.status();
    stmt->expr = std::move(*iter);
    if (IsName("if")) {
      Next();
      auto f = ParseConditional(false);
      if (!f.ok()) return f.status();
      stmt->filter = std::move(*f);
    }
    if (IsName("recursive")) return SyntaxError("unsupported 'recursive' loop", Peek().line);
    s = ExpectBlockEnd();
    if (!s.ok()) return s;
    std::string stop;
    ++loop_depth_;
    s = ParseBody({"else", "endfor"}, &stmt->body, &stop);
    --loop_depth_;
    if (!s.ok()) return s;
    if (stop == "else") {
      s = ExpectBlockEnd();
      if (s.ok()) s = ParseBody({"endfor"}, &stmt->else_body, &stop);
      if (!s.ok()) return s;
    }
    return ExpectBlockEnd();
  }

  absl::Status ParseSet(Stmt* stmt) {
    stmt->kind = Stmt::Kind::kSet;
    if (Peek().type == Type::kName && IsOp(".", 1)) {
      stmt->targets.push_back(Next().value);
      Next();
      auto attr = ExpectName("an attribute name");
      if (!attr.ok()) return attr.status();
      stmt->attr = *attr;
    } else {
      absl::Status s = ParseTargets(&stmt->targets);
      if (!s.ok()) return s;
    }
    if (Peek().type == Type::kBlockEnd && stmt->targets.size() == 1 && stmt->attr.empty()) {
      Next();
      stmt->kind = Stmt::Kind::kSetBlock;
      std::string stop;
      absl::Status s = ParseBody({"endset"}, &stmt->body, &stop);
      return s.ok() ? ExpectBlockEnd() : s;
    }
    absl::Status s = ExpectOp("=");
    if (!s.ok()) return s;
    auto value = ParseTuple();
    if (!value.ok()) return value.status();
    stmt->expr = std::move(*value);
    return ExpectBlockEnd();
  }

  absl::Status ParseMacro(Stmt* stmt) {
    stmt->kind = Stmt::Kind::kMacro;
    auto name = ExpectName("a macro name");
    if (!name.ok()) return name.status();
    stmt->name = *name;
    absl::Status s = ExpectOp("(");
    if (!s.ok()) return s;
    while (!IsOp(")")) {
      auto param = ExpectName("a parameter name");
      if (!param.ok()) return param.status();
      ExprPtr def;
      if (IsOp("=")) {
        Next();
        auto e = ParseExpression();
        if (!e.ok()) return e.status();
        def = std::move(*e);
      }
      stmt->params.emplace_back(*param, std::move(def));
      if (!IsOp(",")) break;
      Next();
    }
    s = ExpectOp(")");
    if (s.ok()) s = ExpectBlockEnd();
    if (!s.ok()) return s;
    std::string stop;
    int saved_loops = loop_depth_;
    loop_depth_ = 0;
    s = ParseBody({"endmacro"}, &stmt->body, &stop);
    loop_depth_ = saved_loops;
    return s.ok() ? ExpectBlockEnd() : s;
  }

  // --- expressions -------------------------------------------------------

  static ExprPtr Make(Expr::Kind kind, int line, std::string name = "") {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    e->name = std::move(name);
    return e;
  }

  absl::StatusOr<ExprPtr> ParseExpression() { return ParseConditional(true); }

  // "a, b" (an unparenthesized tuple, as after "set x =").
  absl::StatusOr<ExprPtr> ParseTuple() {
    int line = Peek().line;
    auto first = ParseExpression();
    if (!first.ok() || !IsOp(",")) return first;
    ExprPtr list = Make(Expr::Kind::kList, line);
    list->children.push_back(std::move(*first));
    while (IsOp(",")) {
      Next();
      auto e = ParseExpression();
      if (!e.ok()) return e.status();
      list->children.push_back(std::move(*e));
    }
    return list;
  }

  absl::StatusOr<ExprPtr> ParseConditional(bool allow_if) {
    if (++depth_ > kMaxNesting) return SyntaxError("expression nested too deeply", Peek().line);
    auto value = ParseOr();
    while (value.ok() && allow_if && IsName("if")) {
      int line = Next().line;
      auto cond = ParseOr();
      if (!cond.ok()) return cond.status();
      ExprPtr e = Make(Expr::Kind::kConditional, line);
      e->children.push_back(std::move(*value));
      e->children.push_back(std::move(*cond));
      if (IsName("else")) {
        Next();
        auto other = ParseConditional(true);
        if (!other.ok()) return other.status();
        e->children.push_back(std::move(*other));
      } else {
        e->children.push_back(nullptr);
      }
      value = std::move(e);
    }
    --depth_;
    return value;
  }

  absl::StatusOr<ExprPtr> Binary(const char* op, ExprPtr left, absl::StatusOr<ExprPtr> right,
                                 int line) {
    if (!right.ok()) return right.status();
    ExprPtr e = Make(Expr::Kind::kBinary, line, op);
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(*right));
    return e;
  }

  absl::StatusOr<ExprPtr> ParseOr() {
    auto left = ParseAnd();
    while (left.ok() && IsName("or")) {
      int line = Next().line;
      left = Binary("or", std::move(*left), ParseAnd(), line);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseAnd() {
    auto left = ParseNot();
    while (left.ok() && IsName("and")) {
      int line = Next().line;
      left = Binary("and", std::move(*left), ParseNot(), line);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      int line = Next().line;
      if (++depth_ > kMaxNesting) return SyntaxError("expression nested too deeply", line);
      auto operand = ParseNot();
      --depth_;
      if (!operand.ok()) return operand.status();
      ExprPtr e = Make(Expr::Kind::kUnary, line, "not");
      e->children.push_back(std::move(*operand));
      return e;
    }
    return ParseCompare();
  }

  // The comparison operator at the cursor ("" if none), consumed.
  std::string TakeCompareOp() {
    const Token& t = Peek();
    if (t.type == Type::kOp && (t.value == "==" || t.value == "!=" || t.value == "<" ||
                                t.value == "<=" || t.value == ">" || t.value == ">=")) {
      return Next().value;
    }
    if (IsName("in")) {
      Next();
      return "in";
    }
    if (IsName("not") && IsName("in", 1)) {
      Next();
      Next();
      return "not in";
    }
    return "";
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    auto left = ParseMath1();
    if (!left.ok()) return left;
    int line = Peek().line;
    std::string op = TakeCompareOp();
    if (op.empty()) return left;
    ExprPtr e = Make(Expr::Kind::kCompare, line);
    e->children.push_back(std::move(*left));
    while (!op.empty()) {
      auto right = ParseMath1();
      if (!right.ok()) return right.status();
      e->ops.push_back(op);
      e->children.push_back(std::move(*right));
      op = TakeCompareOp();
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseMath1() {
    auto left = ParseConcat();
    while (left.ok() && (IsOp("+") || IsOp("-"))) {
      Token op = Next();
      left = Binary(op.value.c_str(), std::move(*left), ParseConcat(), op.line);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseConcat() {
    auto left = ParseMath2();
    while (left.ok() && IsOp("~")) {
      int line = Next().line;
      left = Binary("~", std::move(*left), ParseMath2(), line);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseMath2() {
    auto left = ParsePow();
    while (left.ok() && (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))) {
      Token op = Next();
      left = Binary(op.value.c_str(), std::move(*left), ParsePow(), op.line);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParsePow() {
    auto left = ParseUnary(true);
    while (left.ok() && IsOp("**")) {
      int line = Next().line;
      left = Binary("**", std::move(*left), ParseUnary(true), line);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    if (++depth_ > kMaxNesting) return SyntaxError("expression nested too deeply", Peek().line);
    absl::StatusOr<ExprPtr> node;
    if (IsOp("-") || IsOp("+")) {
      Token op = Next();
      auto operand = ParseUnary(false);
      if (!operand.ok()) return operand.status();
      ExprPtr e = Make(Expr::Kind::kUnary, op.line, op.value);
      e->children.push_back(std::move(*operand));
      node = std::move(e);
    } else {
      node = ParsePrimary();
    }
    if (node.ok()) node = ParsePostfix(std::move(*node));
    if (node.ok() && with_filter) node = ParseFilterExpr(std::move(*node));
    --depth_;
    return node;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    const Token& t = Peek();
    int line = t.line;
    switch (t.type) {
      case Type::kName: {
        std::string name = Next().value;
        ExprPtr e = Make(Expr::Kind::kLiteral, line);
        if (name == "true" || name == "True") {
          e->literal = true;
        } else if (name == "false" || name == "False") {
          e->literal = false;
        } else if (name == "none" || name == "None") {
          e->literal = nullptr;
        } else {
          e = Make(Expr::Kind::kName, line, name);
        }
        return e;
      }
      case Type::kString: {
        std::string value = Next().value;
        while (Peek().type == Type::kString) value += Next().value;  // "a" "b"
        ExprPtr e = Make(Expr::Kind::kLiteral, line);
        e->literal = value;
        return e;
      }
      case Type::kInt: {
        std::string text = Next().value;
        int64_t v;
        ExprPtr e = Make(Expr::Kind::kLiteral, line);
        if (absl::SimpleAtoi(text, &v)) {
          e->literal = v;
        } else {
          return SyntaxError(absl::StrCat("integer literal ", text, " is too large"), line);
        }
        return e;
      }
      case Type::kFloat: {
        std::string text = Next().value;
        ExprPtr e = Make(Expr::Kind::kLiteral, line);
        e->literal = std::strtod(text.c_str(), nullptr);
        return e;
      }
      case Type::kOp:
        if (t.value == "(") {
          Next();
          if (IsOp(")")) {
            Next();
            return Make(Expr::Kind::kList, line);
          }
          auto inner = ParseTuple();
          if (!inner.ok()) return inner;
          absl::Status s = ExpectOp(")");
          if (!s.ok()) return s;
          return inner;
        }
        if (t.value == "[") {
          Next();
          ExprPtr list = Make(Expr::Kind::kList, line);
          while (!IsOp("]")) {
            auto item = ParseExpression();
            if (!item.ok()) return item;
            list->children.push_back(std::move(*item));
            if (!IsOp(",")) break;
            Next();
          }
          absl::Status s = ExpectOp("]");
          if (!s.ok()) return s;
          return list;
        }
        if (t.value == "{") {
          Next();
          ExprPtr dict = Make(Expr::Kind::kDict, line);
          while (!IsOp("}")) {
            auto key = ParseExpression();
            if (!key.ok()) return key;
            absl::Status s = ExpectOp(":");
            if (!s.ok()) return s;
            auto value = ParseExpression();
            if (!value.ok()) return value;
            dict->children.push_back(std::move(*key));
            dict->children.push_back(std::move(*value));
            if (!IsOp(",")) break;
            Next();
          }
          absl::Status s = ExpectOp("}");
          if (!s.ok()) return s;
          return dict;
        }
        break;
      default:
        break;
    }
    return Unexpected("an expression");
  }

  absl::Status ParseCallArgs(Expr* call) {
    absl::Status s = ExpectOp("(");
    if (!s.ok()) return s;
    while (!IsOp(")")) {
      if (Peek().type == Type::kName && IsOp("=", 1)) {
        std::string key = Next().value;
        Next();
        auto value = ParseExpression();
        if (!value.ok()) return value.status();
        call->kwargs.emplace_back(key, std::move(*value));
      } else {
        if (!call->kwargs.empty()) {
          return SyntaxError("positional argument after keyword argument", Peek().line);
        }
        auto value = ParseExpression();
        if (!value.ok()) return value.status();
        call->children.push_back(std::move(*value));
      }
      if (!IsOp(",")) break;
      Next();
    }
    return ExpectOp(")");
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      int line = Peek().line;
      if (IsOp(".")) {
        Next();
        const Token& t = Peek();
        if (t.type == Type::kName) {
          ExprPtr e = Make(Expr::Kind::kGetAttr, line, Next().value);
          e->children.push_back(std::move(node));
          node = std::move(e);
        } else if (t.type == Type::kInt) {
          ExprPtr index = Make(Expr::Kind::kLiteral, line);
          int64_t v = 0;
          if (!absl::SimpleAtoi(Next().value, &v)) return SyntaxError("index too large", line);
          index->literal = v;
          ExprPtr e = Make(Expr::Kind::kGetItem, line);
          e->children.push_back(std::move(node));
          e->children.push_back(std::move(index));
          node = std::move(e);
        } else {
          return Unexpected("an attribute name");
        }
      } else if (IsOp("[")) {
        Next();
        ExprPtr parts[3];
        bool slice = false;
        for (int i = 0; i < 3; ++i) {
          if (!IsOp(":") && !IsOp("]")) {
            auto e = ParseExpression();
            if (!e.ok()) return e.status();
            parts[i] = std::move(*e);
          }
          if (i < 2 && IsOp(":")) {
            Next();
            slice = true;
          } else {
            break;
          }
        }
        absl::Status s = ExpectOp("]");
        if (!s.ok()) return s;
        ExprPtr e = Make(slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, line);
        e->children.push_back(std::move(node));
        if (!slice && parts[0] == nullptr) return SyntaxError("empty subscript", line);
        for (int i = 0; i < (slice ? 3 : 1); ++i) e->children.push_back(std::move(parts[i]));
        node = std::move(e);
      } else if (IsOp("(")) {
        ExprPtr e = Make(Expr::Kind::kCall, line);
        e->children.push_back(std::move(node));
        absl::Status s = ParseCallArgs(e.get());
        if (!s.ok()) return s;
        node = std::move(e);
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      int line = Peek().line;
      if (IsOp("|")) {
        Next();
        auto name = ExpectName("a filter name");
        if (!name.ok()) return name.status();
        if (!IsSupportedFilter(*name)) {
          return SyntaxError(absl::StrCat("unsupported filter '", *name, "'"), line);
        }
        ExprPtr e = Make(Expr::Kind::kFilter, line, *name);
        e->children.push_back(std::move(node));
        if (IsOp("(")) {
          absl::Status s = ParseCallArgs(e.get());
          if (!s.ok()) return s;
        }
        node = std::move(e);
      } else if (IsName("is")) {
        Next();
        bool negated = false;
        if (IsName("not")) {
          Next();
          negated = true;
        }
        auto name = ExpectName("a test name");
        if (!name.ok()) return name.status();
        if (!IsSupportedTest(*name)) {
          return SyntaxError(absl::StrCat("unsupported test '", *name, "'"), line);
        }
        ExprPtr e = Make(Expr::Kind::kTest, line, *name);
        e->negated = negated;
        e->children.push_back(std::move(node));
        const Token& t = Peek();
        if (IsOp("(")) {
          absl::Status s = ParseCallArgs(e.get());
          if (!s.ok()) return s;
        } else if ((t.type == Type::kName && t.value != "else" && t.value != "or" &&
                    t.value != "and" && t.value != "if" && t.value != "is" &&
                    t.value != "in" && t.value != "not") ||
                   t.type == Type::kString || t.type == Type::kInt ||
                   t.type == Type::kFloat || IsOp("[") || IsOp("{")) {
          auto arg = ParsePrimary();  // "x is divisibleby 3"
          if (arg.ok()) arg = ParsePostfix(std::move(*arg));
          if (!arg.ok()) return arg.status();
          e->children.push_back(std::move(*arg));
        }
        node = std::move(e);
      } else if (IsOp("(")) {
        ExprPtr e = Make(Expr::Kind::kCall, line);
        e->children.push_back(std::move(node));
        absl::Status s = ParseCallArgs(e.get());
        if (!s.ok()) return s;
        node = std::move(e);
      } else {
        return node;
      }
    }
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

bool IsSupportedFilter(std::string_view name) {
  for (const char* f : kFilters) {
    if (name == f) return true;
  }
  return false;
}

bool IsSupportedTest(std::string_view name) {
  for (const char* t : kTests) {
    if (name == t) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Program>> ParseJinja(std::string_view source) {
  auto tokens = Lexer(source).Run();
  if (!tokens.ok()) return tokens.status();
  return Parser(std::move(*tokens)).Run();
}

}  // namespace streamlm::jinja_internal

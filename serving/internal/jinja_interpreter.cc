#include "serving/internal/jinja_interpreter.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "utf8proc.h"

namespace streamlm::jinja_internal {
namespace {

// ---------------------------------------------------------------------------
// Values

struct LoopInfo;

// A runtime value. Data (None, bools, numbers, strings, lists, dicts) is a
// node inside an immutable shared JSON tree, so reading messages[i].content
// copies nothing. Namespaces are the one mutable kind.
struct Value {
  enum class Kind { kUndefined, kData, kNamespace, kLoop, kMacro, kBuiltin };
  Kind kind = Kind::kUndefined;
  std::shared_ptr<const Json> owner;     // kData: keeps `node` alive
  const Json* node = nullptr;            // kData
  std::shared_ptr<Json> ns;              // kNamespace: an object, shared by copies
  std::shared_ptr<const LoopInfo> loop;  // kLoop
  const Stmt* macro = nullptr;           // kMacro
  std::string name;                      // kBuiltin: which; kUndefined: what was missing

  static Value Data(Json j) {
    Value v;
    v.kind = Kind::kData;
    v.owner = std::make_shared<const Json>(std::move(j));
    v.node = v.owner.get();
    return v;
  }
  static Value Ref(const std::shared_ptr<const Json>& owner, const Json* node) {
    Value v;
    v.kind = Kind::kData;
    v.owner = owner;
    v.node = node;
    return v;
  }
  static Value Undefined(std::string what) {
    Value v;
    v.name = std::move(what);
    return v;
  }
  static Value Builtin(std::string which) {
    Value v;
    v.kind = Kind::kBuiltin;
    v.name = std::move(which);
    return v;
  }

  bool defined() const { return kind != Kind::kUndefined; }
  bool data() const { return kind == Kind::kData; }
  const Json& json() const { return *node; }
  bool is_string() const { return data() && node->is_string(); }
  bool is_array() const { return data() && node->is_array(); }
  bool is_object() const { return data() && node->is_object(); }
  bool is_null() const { return data() && node->is_null(); }
  bool is_bool() const { return data() && node->is_boolean(); }
  bool is_int() const { return data() && node->is_number_integer(); }
  bool is_float() const { return data() && node->is_number_float(); }
  bool is_number() const { return data() && (node->is_number() || node->is_boolean()); }
  const std::string& str() const { return node->get_ref<const std::string&>(); }
};

struct LoopInfo {
  int64_t index0 = 0;
  int64_t length = 0;
  Value previtem, nextitem;
};

// ---------------------------------------------------------------------------
// Text helpers (Python string semantics over UTF-8)

// The characters of `s`: each well-formed UTF-8 sequence, or one invalid byte.
std::vector<std::string_view> SplitChars(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                          static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    size_t len = n > 0 ? static_cast<size_t>(n) : 1;
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

int32_t CodePoint(std::string_view ch) {
  utf8proc_int32_t cp;
  utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(ch.data()),
                                        static_cast<utf8proc_ssize_t>(ch.size()), &cp);
  return n > 0 ? cp : -1;
}

void AppendCodePoint(int32_t cp, std::string* out) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(cp, buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

// Python's str.isspace() set.
bool IsPySpace(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
         cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool IsCased(int32_t cp) {
  if (cp < 0) return false;
  utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

std::string MapCase(std::string_view s, bool upper) {
  std::string out;
  out.reserve(s.size());
  for (std::string_view ch : SplitChars(s)) {
    int32_t cp = CodePoint(ch);
    if (cp < 0) {
      out.append(ch);
    } else {
      AppendCodePoint(upper ? utf8proc_toupper(cp) : utf8proc_tolower(cp), &out);
    }
  }
  return out;
}

// Python str.strip / lstrip / rstrip; `chars` null = whitespace.
std::string Strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<std::string_view> cs = SplitChars(s);
  std::vector<std::string_view> set;
  if (chars != nullptr) set = SplitChars(*chars);
  auto strip = [&](std::string_view ch) {
    if (chars == nullptr) return IsPySpace(CodePoint(ch));
    for (std::string_view c : set) {
      if (c == ch) return true;
    }
    return false;
  };
  size_t b = 0, e = cs.size();
  if (left) {
    while (b < e && strip(cs[b])) ++b;
  }
  if (right) {
    while (e > b && strip(cs[e - 1])) --e;
  }
  std::string out;
  for (size_t i = b; i < e; ++i) out.append(cs[i]);
  return out;
}

std::string PyRepr(const Json& j);

std::string PyStringRepr(const std::string& s) {
  char quote = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c == quote) {
          out.push_back('\\');
          out.push_back(c);
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back(quote);
  return out;
}

int64_t IntOf(const Json& j) {
  if (j.is_boolean()) return j.get<bool>() ? 1 : 0;
  if (j.is_number_unsigned()) {
    uint64_t u = j.get<uint64_t>();
    return u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
  }
  return j.get<int64_t>();
}
double FloatOf(const Json& j) {
  if (j.is_boolean()) return j.get<bool>() ? 1.0 : 0.0;
  return j.get<double>();
}

// Python str() of data.
std::string PyStr(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "None";
    case Json::value_t::boolean: return j.get<bool>() ? "True" : "False";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return j.dump();
    case Json::value_t::number_float: return PythonFloatRepr(j.get<double>());
    case Json::value_t::string: return j.get<std::string>();
    default: return PyRepr(j);
  }
}

std::string PyRepr(const Json& j) {
  if (j.is_string()) return PyStringRepr(j.get_ref<const std::string&>());
  if (j.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < j.size(); ++i) {
      if (i > 0) out += ", ";
      out += PyRepr(j[i]);
    }
    return out + "]";
  }
  if (j.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : j.items()) {
      if (!first) out += ", ";
      first = false;
      out += PyStringRepr(k) + ": " + PyRepr(v);
    }
    return out + "}";
  }
  return PyStr(j);
}

void JsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(c));
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// json.dumps(j, ensure_ascii=False, indent=indent) (indent < 0: none).
void PyJsonDump(const Json& j, int indent, int depth, std::string* out) {
  auto newline = [&](int d) {
    out->push_back('\n');
    out->append(static_cast<size_t>(indent * d), ' ');
  };
  const char* item_sep = indent >= 0 ? "," : ", ";
  switch (j.type()) {
    case Json::value_t::null: *out += "null"; return;
    case Json::value_t::boolean: *out += j.get<bool>() ? "true" : "false"; return;
    case Json::value_t::number_float: {
      double v = j.get<double>();
      *out += std::isnan(v) ? "NaN" : std::isinf(v) ? (v > 0 ? "Infinity" : "-Infinity")
                                                    : PythonFloatRepr(v);
      return;
    }
    case Json::value_t::string: JsonString(j.get_ref<const std::string&>(), out); return;
    case Json::value_t::array: {
      if (j.empty()) {
        *out += "[]";
        return;
      }
      out->push_back('[');
      for (size_t i = 0; i < j.size(); ++i) {
        if (i > 0) *out += item_sep;
        if (indent >= 0) newline(depth + 1);
        PyJsonDump(j[i], indent, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out->push_back(']');
      return;
    }
    case Json::value_t::object: {
      if (j.empty()) {
        *out += "{}";
        return;
      }
      out->push_back('{');
      bool first = true;
      for (const auto& [k, v] : j.items()) {
        if (!first) *out += item_sep;
        first = false;
        if (indent >= 0) newline(depth + 1);
        JsonString(k, out);
        *out += ": ";
        PyJsonDump(v, indent, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out->push_back('}');
      return;
    }
    default: *out += j.dump(); return;
  }
}

// Values nested deeper than this are refused (copying, printing and
// comparing them recurses).
constexpr int kMaxValueDepth = 128;

// Adds to *cost the nodes of `j` (plus 1 per 16 string bytes) and raises
// *max_depth to its depth; stops early once *cost passes `budget` or the
// depth passes kMaxValueDepth.
void Measure(const Json& j, int depth, int64_t budget, int64_t* cost, int* max_depth) {
  *max_depth = std::max(*max_depth, depth);
  *cost += 1;
  if (j.is_string()) *cost += static_cast<int64_t>(j.get_ref<const std::string&>().size() / 16);
  if (depth > kMaxValueDepth || *cost > budget) return;
  if (j.is_array() || j.is_object()) {
    for (const auto& v : j) {
      Measure(v, depth + 1, budget, cost, max_depth);
      if (*cost > budget || *max_depth > kMaxValueDepth) return;
    }
  }
}

// ---------------------------------------------------------------------------
// The interpreter

enum class Jump { kNone, kBreak, kContinue };

class Interpreter {
 public:
  Interpreter(const RenderLimits& limits, const Json& globals) : limits_(limits) {
    auto root = std::make_shared<const Json>(globals);
    frames_.emplace_back();
    for (const char* b : {"range", "namespace", "raise_exception", "dict", "strftime_now"}) {
      frames_[0][b] = Value::Builtin(b);
    }
    for (const auto& [k, v] : root->items()) frames_[0][k] = Value::Ref(root, &v);
  }

  absl::StatusOr<std::string> Run(const Program& program) {
    absl::Status s = ExecBody(program.body);
    if (!s.ok()) return s;
    return std::move(out_);
  }

 private:
  using Frame = std::unordered_map<std::string, Value>;

  static absl::Status Error(int line, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(what, " at line ", line));
  }

  absl::Status Step(int line, int64_t n = 1) {
    steps_ += n;
    if (steps_ > limits_.max_steps) {
      return Error(line, absl::StrCat("template exceeded its work limit (", limits_.max_steps,
                                      " steps): it may loop without end"));
    }
    return absl::OkStatus();
  }

  // Charges for building a string of `bytes` and refuses over-long ones.
  absl::Status CheckString(size_t bytes, int line) {
    if (bytes > limits_.max_output_bytes) {
      return Error(line, absl::StrCat("string longer than the limit of ",
                                      limits_.max_output_bytes, " bytes"));
    }
    return Step(line, static_cast<int64_t>(bytes / 16));
  }

  // Charges for copying (or printing) `j`, `times` over; refuses values
  // nested deeper than kMaxValueDepth.
  absl::Status ChargeCopy(const Json& j, int line, int64_t times = 1) {
    int64_t cost = 0;
    int depth = 0;
    Measure(j, 1, limits_.max_steps - steps_ + 1, &cost, &depth);
    if (depth > kMaxValueDepth) {
      return Error(line, absl::StrCat("value nested deeper than ", kMaxValueDepth, " levels"));
    }
    int64_t total;
    if (__builtin_mul_overflow(cost, times, &total)) total = limits_.max_steps + 1;
    return Step(line, total);
  }

  absl::Status Emit(std::string_view s, int line) {
    if (out_.size() + s.size() > limits_.max_output_bytes) {
      return Error(line, absl::StrCat("output longer than the limit of ",
                                      limits_.max_output_bytes, " bytes"));
    }
    out_.append(s);
    return Step(line, static_cast<int64_t>(s.size() / 16));
  }

  // --- names -----------------------------------------------------------

  Value Lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value::Undefined(name);
  }

  // --- conversions ------------------------------------------------------

  static std::string TypeName(const Value& v) {
    switch (v.kind) {
      case Value::Kind::kUndefined: return "undefined";
      case Value::Kind::kNamespace: return "namespace";
      case Value::Kind::kLoop: return "loop";
      case Value::Kind::kMacro: return "macro";
      case Value::Kind::kBuiltin: return "builtin function";
      case Value::Kind::kData: break;
    }
    switch (v.json().type()) {
      case Json::value_t::null: return "NoneType";
      case Json::value_t::boolean: return "bool";
      case Json::value_t::number_float: return "float";
      case Json::value_t::string: return "str";
      case Json::value_t::array: return "list";
      case Json::value_t::object: return "dict";
      default: return "int";
    }
  }

  absl::StatusOr<Json> ToJson(const Value& v, int line) {
    switch (v.kind) {
      case Value::Kind::kData: {
        absl::Status s = ChargeCopy(v.json(), line);
        if (!s.ok()) return s;
        return v.json();
      }
      case Value::Kind::kUndefined: return Json(nullptr);
      case Value::Kind::kNamespace: {
        absl::Status s = ChargeCopy(*v.ns, line);
        if (!s.ok()) return s;
        return *v.ns;
      }
      default: return Error(line, absl::StrCat("a ", TypeName(v), " cannot be stored in a value"));
    }
  }

  absl::StatusOr<std::string> ToStr(const Value& v, int line) {
    switch (v.kind) {
      case Value::Kind::kUndefined: return std::string();
      case Value::Kind::kData: {
        if (v.is_string()) return v.str();
        absl::Status charged = ChargeCopy(v.json(), line);
        if (!charged.ok()) return charged;
        std::string s = PyStr(v.json());
        absl::Status st = CheckString(s.size(), line);
        if (!st.ok()) return st;
        return s;
      }
      case Value::Kind::kNamespace: return std::string("<Namespace>");
      case Value::Kind::kLoop: return std::string("<LoopContext>");
      case Value::Kind::kMacro: return absl::StrCat("<Macro '", v.macro->name, "'>");
      case Value::Kind::kBuiltin: return absl::StrCat("<built-in function ", v.name, ">");
    }
    return std::string();
  }

  static bool Truthy(const Value& v) {
    if (v.kind == Value::Kind::kUndefined) return false;
    if (!v.data()) return true;
    const Json& j = v.json();
    switch (j.type()) {
      case Json::value_t::null: return false;
      case Json::value_t::boolean: return j.get<bool>();
      case Json::value_t::number_float: return j.get<double>() != 0.0;
      case Json::value_t::number_integer:
      case Json::value_t::number_unsigned: return IntOf(j) != 0;
      case Json::value_t::string: return !j.get_ref<const std::string&>().empty();
      case Json::value_t::array:
      case Json::value_t::object: return !j.empty();
      default: return true;
    }
  }

  // Python ==, with 1 == 1.0 == True.
  static bool JsonEqual(const Json& a, const Json& b, int depth = 0) {
    if (depth > kMaxValueDepth) return false;
    bool an = a.is_number() || a.is_boolean(), bn = b.is_number() || b.is_boolean();
    if (an && bn) {
      if (a.is_number_float() || b.is_number_float()) return FloatOf(a) == FloatOf(b);
      return IntOf(a) == IntOf(b);
    }
    if (a.type() != b.type()) return false;
    if (a.is_array()) {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i) {
        if (!JsonEqual(a[i], b[i], depth + 1)) return false;
      }
      return true;
    }
    if (a.is_object()) {
      if (a.size() != b.size()) return false;
      for (const auto& [k, v] : a.items()) {
        auto it = b.find(k);
        if (it == b.end() || !JsonEqual(v, *it, depth + 1)) return false;
      }
      return true;
    }
    return a == b;
  }

  static bool Equal(const Value& a, const Value& b) {
    if (a.data() && b.data()) return JsonEqual(a.json(), b.json());
    if (a.kind != b.kind) return false;
    switch (a.kind) {
      case Value::Kind::kUndefined: return true;
      case Value::Kind::kNamespace: return a.ns == b.ns;
      case Value::Kind::kLoop: return a.loop == b.loop;
      case Value::Kind::kMacro: return a.macro == b.macro;
      case Value::Kind::kBuiltin: return a.name == b.name;
      default: return false;
    }
  }

  // Python's <, as -1/0/1; an error for unordered types.
  absl::StatusOr<int> Compare(const Value& a, const Value& b, const std::string& op, int line,
                              int depth = 0) {
    if (depth > kMaxValueDepth) return Error(line, "values nested too deeply to compare");
    if (a.is_number() && b.is_number()) {
      if (a.is_float() || b.is_float()) {
        double x = FloatOf(a.json()), y = FloatOf(b.json());
        return x < y ? -1 : x > y ? 1 : 0;
      }
      int64_t x = IntOf(a.json()), y = IntOf(b.json());
      return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.is_string() && b.is_string()) {
      int c = a.str().compare(b.str());  // UTF-8 byte order is code point order
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    if (a.is_array() && b.is_array()) {
      const Json &x = a.json(), &y = b.json();
      for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
        Value xi = Value::Ref(a.owner, &x[i]), yi = Value::Ref(b.owner, &y[i]);
        if (Equal(xi, yi)) continue;
        return Compare(xi, yi, op, line, depth + 1);
      }
      return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
    }
    return Error(line, absl::StrCat("'", op, "' not supported between '", TypeName(a), "' and '",
                                    TypeName(b), "'"));
  }

  absl::StatusOr<bool> Contains(const Value& container, const Value& item, int line) {
    if (!container.defined()) return false;
    if (container.is_string()) {
      if (!item.is_string()) {
        return Error(line, absl::StrCat("'in <string>' requires a string, not '", TypeName(item), "'"));
      }
      return container.str().find(item.str()) != std::string::npos;
    }
    if (container.is_array()) {
      for (const Json& e : container.json()) {
        if (Equal(Value::Ref(container.owner, &e), item)) return true;
      }
      return false;
    }
    if (container.is_object()) return item.is_string() && container.json().contains(item.str());
    if (container.kind == Value::Kind::kNamespace) {
      return item.is_string() && container.ns->contains(item.str());
    }
    return Error(line, absl::StrCat("argument of type '", TypeName(container), "' is not iterable"));
  }

  // The items a for loop (or a filter) walks over.
  absl::StatusOr<std::vector<Value>> Iterate(const Value& v, int line) {
    std::vector<Value> items;
    if (!v.defined()) return items;
    if (v.is_array()) {
      items.reserve(v.json().size());
      for (const Json& e : v.json()) items.push_back(Value::Ref(v.owner, &e));
    } else if (v.is_object()) {
      for (const auto& [k, e] : v.json().items()) items.push_back(Value::Data(k));
    } else if (v.is_string()) {
      for (std::string_view ch : SplitChars(v.str())) items.push_back(Value::Data(std::string(ch)));
    } else {
      return Error(line, absl::StrCat("'", TypeName(v), "' object is not iterable"));
    }
    absl::Status s = Step(line, static_cast<int64_t>(items.size()));
    if (!s.ok()) return s;
    return items;
  }

  // --- attribute and item access ---------------------------------------

  absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name, int line) {
    switch (obj.kind) {
      case Value::Kind::kUndefined:
        return Error(line, absl::StrCat("'", obj.name, "' is undefined (reading its '", name, "')"));
      case Value::Kind::kNamespace: {
        auto it = obj.ns->find(name);
        if (it == obj.ns->end()) return Value::Undefined(name);
        return Value::Data(*it);
      }
      case Value::Kind::kLoop: {
        const LoopInfo& l = *obj.loop;
        if (name == "index") return Value::Data(l.index0 + 1);
        if (name == "index0") return Value::Data(l.index0);
        if (name == "revindex") return Value::Data(l.length - l.index0);
        if (name == "revindex0") return Value::Data(l.length - l.index0 - 1);
        if (name == "first") return Value::Data(l.index0 == 0);
        if (name == "last") return Value::Data(l.index0 == l.length - 1);
        if (name == "length") return Value::Data(l.length);
        if (name == "depth") return Value::Data(1);
        if (name == "depth0") return Value::Data(0);
        if (name == "previtem") return l.previtem;
        if (name == "nextitem") return l.nextitem;
        return Value::Undefined("loop." + name);
      }
      case Value::Kind::kData:
        if (obj.is_object()) {
          auto it = obj.json().find(name);
          if (it != obj.json().end()) return Value::Ref(obj.owner, &*it);
        }
        return Value::Undefined(name);
      default:
        return Value::Undefined(name);
    }
  }

  absl::StatusOr<Value> GetItem(const Value& obj, const Value& key, int line) {
    if (!obj.defined()) {
      return Error(line, absl::StrCat("'", obj.name, "' is undefined (subscripted)"));
    }
    if (key.is_string() && !obj.is_array() && !obj.is_string()) return GetAttr(obj, key.str(), line);
    if ((obj.is_array() || obj.is_string()) && (key.is_int() || key.is_bool())) {
      int64_t i = IntOf(key.json());
      if (obj.is_array()) {
        int64_t n = static_cast<int64_t>(obj.json().size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::Undefined("index " + std::to_string(i));
        return Value::Ref(obj.owner, &obj.json()[static_cast<size_t>(i)]);
      }
      std::vector<std::string_view> cs = SplitChars(obj.str());
      int64_t n = static_cast<int64_t>(cs.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::Undefined("index " + std::to_string(i));
      return Value::Data(std::string(cs[static_cast<size_t>(i)]));
    }
    return Value::Undefined("item");
  }

  absl::StatusOr<Value> Slice(const Value& obj, const Value* parts[3], int line) {
    if (!obj.defined()) return Error(line, absl::StrCat("'", obj.name, "' is undefined (sliced)"));
    if (!obj.is_array() && !obj.is_string()) {
      return Error(line, absl::StrCat("'", TypeName(obj), "' object cannot be sliced"));
    }
    int64_t bounds[3];
    bool given[3];
    for (int i = 0; i < 3; ++i) {
      given[i] = parts[i] != nullptr && !parts[i]->is_null() && parts[i]->defined();
      if (given[i] && !(parts[i]->is_int() || parts[i]->is_bool())) {
        return Error(line, "slice indices must be integers or none");
      }
      bounds[i] = given[i] ? IntOf(parts[i]->json()) : 0;
    }
    int64_t step = given[2] ? bounds[2] : 1;
    if (step == 0) return Error(line, "slice step cannot be zero");
    std::vector<std::string_view> cs;
    if (obj.is_string()) cs = SplitChars(obj.str());
    int64_t n = obj.is_string() ? static_cast<int64_t>(cs.size()) : static_cast<int64_t>(obj.json().size());
    auto clamp = [&](int64_t v, bool has, int64_t dflt) {
      if (!has) return dflt;
      if (v < 0) v += n;
      if (step > 0) return std::min(std::max<int64_t>(v, 0), n);
      return std::min(std::max<int64_t>(v, -1), n - 1);
    };
    int64_t start = clamp(bounds[0], given[0], step > 0 ? 0 : n - 1);
    int64_t stop = clamp(bounds[1], given[1], step > 0 ? n : -1);
    std::vector<int64_t> idx;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) idx.push_back(i);
    absl::Status s = Step(line, static_cast<int64_t>(idx.size()));
    if (!s.ok()) return s;
    if (obj.is_string()) {
      std::string out;
      for (int64_t i : idx) out.append(cs[static_cast<size_t>(i)]);
      return Value::Data(std::move(out));
    }
    Json out = Json::array();
    for (int64_t i : idx) {
      const Json& item = obj.json()[static_cast<size_t>(i)];
      s = ChargeCopy(item, line);
      if (!s.ok()) return s;
      out.push_back(item);
    }
    return Value::Data(std::move(out));
  }

  // --- arithmetic --------------------------------------------------------

  absl::StatusOr<Value> Arith(const std::string& op, const Value& a, const Value& b, int line) {
    auto type_error = [&]() {
      return Error(line, absl::StrCat("unsupported operand types for ", op, ": '", TypeName(a),
                                      "' and '", TypeName(b), "'"));
    };
    if (op == "+" && a.is_string() && b.is_string()) {
      absl::Status s = CheckString(a.str().size() + b.str().size(), line);
      if (!s.ok()) return s;
      return Value::Data(a.str() + b.str());
    }
    if (op == "+" && a.is_array() && b.is_array()) {
      absl::Status s = ChargeCopy(a.json(), line);
      if (s.ok()) s = ChargeCopy(b.json(), line);
      if (!s.ok()) return s;
      Json out = a.json();
      for (const Json& e : b.json()) out.push_back(e);
      return Value::Data(std::move(out));
    }
    if (op == "*" && ((a.is_string() || a.is_array()) && (b.is_int() || b.is_bool()))) {
      return Repeat(a, IntOf(b.json()), line);
    }
    if (op == "*" && ((b.is_string() || b.is_array()) && (a.is_int() || a.is_bool()))) {
      return Repeat(b, IntOf(a.json()), line);
    }
    if (op == "%" && a.is_string()) {
      return Error(line, "printf-style string formatting ('...' % x) is not supported");
    }
    if (!a.is_number() || !b.is_number()) return type_error();
    bool floats = a.is_float() || b.is_float() || op == "/";
    if (op == "**" && !floats && IntOf(b.json()) < 0) floats = true;
    if (floats) {
      double x = FloatOf(a.json()), y = FloatOf(b.json()), r;
      if ((op == "/" || op == "//" || op == "%") && y == 0) return Error(line, "division by zero");
      if (op == "+") r = x + y;
      else if (op == "-") r = x - y;
      else if (op == "*") r = x * y;
      else if (op == "/") r = x / y;
      else if (op == "//") r = std::floor(x / y);
      else if (op == "%") {
        r = std::fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
      } else r = std::pow(x, y);
      return Value::Data(r);
    }
    int64_t x = IntOf(a.json()), y = IntOf(b.json()), r = 0;
    bool overflow = false;
    if (op == "+") overflow = __builtin_add_overflow(x, y, &r);
    else if (op == "-") overflow = __builtin_sub_overflow(x, y, &r);
    else if (op == "*") overflow = __builtin_mul_overflow(x, y, &r);
    else if (op == "//" || op == "%") {
      if (y == 0) return Error(line, "division by zero");
      if (x == INT64_MIN && y == -1) {
        overflow = op == "//";
        r = 0;
      } else {
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        r = op == "//" ? q : m;
      }
    } else {  // **
      r = 1;
      for (int64_t i = 0; i < y && !overflow; ++i) overflow = __builtin_mul_overflow(r, x, &r);
      if (y > 64 && (x == 0 || x == 1)) overflow = false;
    }
    if (overflow) return Error(line, absl::StrCat("integer overflow in '", op, "'"));
    return Value::Data(r);
  }

  absl::StatusOr<Value> Repeat(const Value& v, int64_t times, int line) {
    if (times < 0) times = 0;
    if (v.is_string()) {
      if (times > 0 && v.str().size() > limits_.max_output_bytes / static_cast<uint64_t>(times)) {
        return CheckString(limits_.max_output_bytes + 1, line);
      }
      absl::Status s = CheckString(v.str().size() * static_cast<size_t>(times), line);
      if (!s.ok()) return s;
      std::string out;
      for (int64_t i = 0; i < times; ++i) out += v.str();
      return Value::Data(std::move(out));
    }
    absl::Status s = ChargeCopy(v.json(), line, times);
    if (!s.ok()) return s;
    Json out = Json::array();
    for (int64_t i = 0; i < times; ++i) {
      for (const Json& e : v.json()) out.push_back(e);
    }
    return Value::Data(std::move(out));
  }

  // --- expressions -------------------------------------------------------

  absl::StatusOr<Value> Eval(const Expr& e) {
    absl::Status s = Step(e.line);
    if (!s.ok()) return s;
    switch (e.kind) {
      case Expr::Kind::kLiteral: return Value::Ref(nullptr, &e.literal);
      case Expr::Kind::kName: return Lookup(e.name);
      case Expr::Kind::kList: {
        Json out = Json::array();
        for (const ExprPtr& c : e.children) {
          auto v = Eval(*c);
          if (!v.ok()) return v.status();
          auto j = ToJson(*v, c->line);
          if (!j.ok()) return j.status();
          out.push_back(std::move(*j));
        }
        return Value::Data(std::move(out));
      }
      case Expr::Kind::kDict: {
        Json out = Json::object();
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          auto k = Eval(*e.children[i]);
          if (!k.ok()) return k.status();
          if (!k->is_string()) return Error(e.line, "dict keys must be strings here");
          auto v = Eval(*e.children[i + 1]);
          if (!v.ok()) return v.status();
          auto j = ToJson(*v, e.line);
          if (!j.ok()) return j.status();
          out[k->str()] = std::move(*j);
        }
        return Value::Data(std::move(out));
      }
      case Expr::Kind::kGetAttr: {
        auto obj = Eval(*e.children[0]);
        if (!obj.ok()) return obj;
        return GetAttr(*obj, e.name, e.line);
      }
      case Expr::Kind::kGetItem: {
        auto obj = Eval(*e.children[0]);
        if (!obj.ok()) return obj;
        auto key = Eval(*e.children[1]);
        if (!key.ok()) return key;
        return GetItem(*obj, *key, e.line);
      }
      case Expr::Kind::kSlice: {
        auto obj = Eval(*e.children[0]);
        if (!obj.ok()) return obj;
        Value parts[3];
        const Value* ptrs[3] = {nullptr, nullptr, nullptr};
        for (int i = 0; i < 3; ++i) {
          if (e.children[i + 1] == nullptr) continue;
          auto v = Eval(*e.children[i + 1]);
          if (!v.ok()) return v;
          parts[i] = std::move(*v);
          ptrs[i] = &parts[i];
        }
        return Slice(*obj, ptrs, e.line);
      }
      case Expr::Kind::kCall: return EvalCall(e);
      case Expr::Kind::kFilter: return EvalFilter(e);
      case Expr::Kind::kTest: {
        auto r = EvalTest(e);
        if (!r.ok()) return r.status();
        return Value::Data(*r != e.negated);
      }
      case Expr::Kind::kUnary: {
        auto v = Eval(*e.children[0]);
        if (!v.ok()) return v;
        if (e.name == "not") return Value::Data(!Truthy(*v));
        if (!v->is_number()) {
          return Error(e.line, absl::StrCat("bad operand type for unary ", e.name, ": '",
                                            TypeName(*v), "'"));
        }
        if (e.name == "+") return v->is_float() ? *v : Value::Data(IntOf(v->json()));
        if (v->is_float()) return Value::Data(-v->json().get<double>());
        int64_t i = IntOf(v->json());
        if (i == INT64_MIN) return Error(e.line, "integer overflow in unary -");
        return Value::Data(-i);
      }
      case Expr::Kind::kBinary: return EvalBinary(e);
      case Expr::Kind::kCompare: return EvalCompare(e);
      case Expr::Kind::kConditional: {
        auto c = Eval(*e.children[1]);
        if (!c.ok()) return c;
        if (Truthy(*c)) return Eval(*e.children[0]);
        if (e.children[2] == nullptr) return Value::Undefined("conditional expression");
        return Eval(*e.children[2]);
      }
    }
    return Value();
  }

  absl::StatusOr<Value> EvalBinary(const Expr& e) {
    const std::string& op = e.name;
    auto a = Eval(*e.children[0]);
    if (!a.ok()) return a;
    if (op == "and") return Truthy(*a) ? Eval(*e.children[1]) : a;
    if (op == "or") return Truthy(*a) ? a : Eval(*e.children[1]);
    auto b = Eval(*e.children[1]);
    if (!b.ok()) return b;
    if (op == "~") {
      auto x = ToStr(*a, e.line);
      if (!x.ok()) return x.status();
      auto y = ToStr(*b, e.line);
      if (!y.ok()) return y.status();
      absl::Status s = CheckString(x->size() + y->size(), e.line);
      if (!s.ok()) return s;
      return Value::Data(*x + *y);
    }
    if (!a->defined() || !b->defined()) {
      const Value& u = a->defined() ? *b : *a;
      return Error(e.line, absl::StrCat("'", u.name, "' is undefined (used with '", op, "')"));
    }
    return Arith(op, *a, *b, e.line);
  }

  absl::StatusOr<bool> CompareOp(const std::string& op, const Value& a, const Value& b, int line) {
    if (op == "==") return Equal(a, b);
    if (op == "!=") return !Equal(a, b);
    if (op == "in" || op == "not in") {
      auto r = Contains(b, a, line);
      if (!r.ok()) return r.status();
      return *r == (op == "in");
    }
    auto c = Compare(a, b, op, line);
    if (!c.ok()) return c.status();
    return op == "<" ? *c < 0 : op == "<=" ? *c <= 0 : op == ">" ? *c > 0 : *c >= 0;
  }

  absl::StatusOr<Value> EvalCompare(const Expr& e) {
    auto left = Eval(*e.children[0]);
    if (!left.ok()) return left;
    for (size_t i = 0; i < e.ops.size(); ++i) {
      auto right = Eval(*e.children[i + 1]);
      if (!right.ok()) return right;
      auto r = CompareOp(e.ops[i], *left, *right, e.line);
      if (!r.ok()) return r.status();
      if (!*r) return Value::Data(false);
      left = std::move(right);
    }
    return Value::Data(true);
  }

  struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    const Value* Get(size_t i, const char* name) const {
      for (const auto& [k, v] : kw) {
        if (k == name) return &v;
      }
      return i < pos.size() ? &pos[i] : nullptr;
    }
  };

  absl::StatusOr<Args> EvalArgs(const Expr& e, size_t first) {
    Args args;
    for (size_t i = first; i < e.children.size(); ++i) {
      auto v = Eval(*e.children[i]);
      if (!v.ok()) return v.status();
      args.pos.push_back(std::move(*v));
    }
    for (const auto& [k, expr] : e.kwargs) {
      auto v = Eval(*expr);
      if (!v.ok()) return v.status();
      args.kw.emplace_back(k, std::move(*v));
    }
    return args;
  }

  absl::StatusOr<std::string> StrArg(const Args& a, size_t i, const char* name, const char* fn,
                                     int line) {
    const Value* v = a.Get(i, name);
    if (v == nullptr || !v->is_string()) {
      return Error(line, absl::StrCat(fn, ": argument '", name, "' must be a string"));
    }
    return v->str();
  }

  absl::StatusOr<Value> EvalCall(const Expr& e) {
    const Expr& callee = *e.children[0];
    if (callee.kind == Expr::Kind::kGetAttr) {
      auto recv = Eval(*callee.children[0]);
      if (!recv.ok()) return recv;
      auto args = EvalArgs(e, 1);
      if (!args.ok()) return args.status();
      if (!recv->defined()) {
        return Error(e.line, absl::StrCat("'", recv->name, "' is undefined (calling its '",
                                          callee.name, "()')"));
      }
      if (recv->kind == Value::Kind::kNamespace) {
        auto attr = GetAttr(*recv, callee.name, e.line);
        if (!attr.ok()) return attr;
        if (attr->kind == Value::Kind::kMacro || attr->kind == Value::Kind::kBuiltin) {
          return CallValue(*attr, *args, e.line);
        }
      }
      return CallMethod(*recv, callee.name, *args, e.line);
    }
    auto fn = Eval(callee);
    if (!fn.ok()) return fn;
    auto args = EvalArgs(e, 1);
    if (!args.ok()) return args.status();
    return CallValue(*fn, *args, e.line);
  }

  absl::StatusOr<Value> CallValue(const Value& fn, const Args& args, int line) {
    if (fn.kind == Value::Kind::kBuiltin) return CallBuiltin(fn.name, args, line);
    if (fn.kind == Value::Kind::kMacro) return CallMacro(*fn.macro, args, line);
    if (!fn.defined()) return Error(line, absl::StrCat("'", fn.name, "' is undefined (called)"));
    return Error(line, absl::StrCat("'", TypeName(fn), "' object is not callable"));
  }

  absl::StatusOr<Value> CallBuiltin(const std::string& name, const Args& a, int line) {
    if (name == "raise_exception") {
      const Value* msg = a.Get(0, "message");
      std::string text;
      if (msg != nullptr) {
        auto s = ToStr(*msg, line);
        if (!s.ok()) return s.status();
        text = *s;
      }
      return absl::InvalidArgumentError(text);
    }
    if (name == "range") {
      int64_t v[3] = {0, 0, 1};
      if (a.pos.empty() || a.pos.size() > 3) return Error(line, "range() takes 1 to 3 integers");
      for (size_t i = 0; i < a.pos.size(); ++i) {
        if (!a.pos[i].is_int() && !a.pos[i].is_bool()) {
          return Error(line, "range() arguments must be integers");
        }
      }
      if (a.pos.size() == 1) {
        v[1] = IntOf(a.pos[0].json());
      } else {
        v[0] = IntOf(a.pos[0].json());
        v[1] = IntOf(a.pos[1].json());
        if (a.pos.size() == 3) v[2] = IntOf(a.pos[2].json());
      }
      if (v[2] == 0) return Error(line, "range() step must not be zero");
      // Count first so that a huge range fails on the work limit, not memory.
      double count = std::ceil((static_cast<double>(v[1]) - static_cast<double>(v[0])) /
                               static_cast<double>(v[2]));
      if (count > 0) {
        absl::Status s = Step(line, count > 1e15 ? int64_t{1} << 50 : static_cast<int64_t>(count));
        if (!s.ok()) return s;
      }
      Json out = Json::array();
      for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1];) {
        out.push_back(i);
        if (__builtin_add_overflow(i, v[2], &i)) break;
      }
      return Value::Data(std::move(out));
    }
    if (name == "namespace" || name == "dict") {
      auto obj = std::make_shared<Json>(Json::object());
      for (const Value& p : a.pos) {
        if (!p.is_object()) return Error(line, name + "() takes a dict or keyword arguments");
        absl::Status st = ChargeCopy(p.json(), line);
        if (!st.ok()) return st;
        for (const auto& [k, v] : p.json().items()) (*obj)[k] = v;
      }
      for (const auto& [k, v] : a.kw) {
        auto j = ToJson(v, line);
        if (!j.ok()) return j.status();
        (*obj)[k] = std::move(*j);
      }
      if (name == "dict") return Value::Data(std::move(*obj));
      Value ns;
      ns.kind = Value::Kind::kNamespace;
      ns.ns = std::move(obj);
      return ns;
    }
    if (name == "strftime_now") {
      auto fmt = StrArg(a, 0, "format", "strftime_now", line);
      if (!fmt.ok()) return fmt.status();
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      size_t n = fmt->size() < 100 ? std::strftime(buf, sizeof(buf), fmt->c_str(), &tm) : 0;
      return Value::Data(std::string(buf, n));
    }
    return Error(line, absl::StrCat("unsupported function '", name, "'"));
  }

  absl::StatusOr<Value> CallMacro(const Stmt& m, const Args& a, int line) {
    if (call_depth_ >= limits_.max_call_depth) {
      return Error(line, absl::StrCat("macro calls nested deeper than ", limits_.max_call_depth));
    }
    if (a.pos.size() > m.params.size()) {
      return Error(line, absl::StrCat("macro '", m.name, "' takes ", m.params.size(),
                                      " arguments, got ", a.pos.size()));
    }
    Frame frame;
    for (size_t i = 0; i < a.pos.size(); ++i) frame[m.params[i].first] = a.pos[i];
    for (const auto& [k, v] : a.kw) {
      bool known = false;
      for (const auto& p : m.params) known = known || p.first == k;
      if (!known) {
        return Error(line, absl::StrCat("macro '", m.name, "' has no parameter '", k, "'"));
      }
      frame[k] = v;
    }
    // The macro sees the template's top-level variables and its arguments.
    std::vector<Frame> saved;
    saved.swap(frames_);
    frames_.push_back(saved.front());
    frames_.push_back(std::move(frame));
    absl::Status s;
    for (const auto& [pname, dflt] : m.params) {
      if (frames_.back().count(pname) == 0) {
        if (dflt == nullptr) {
          frames_.back()[pname] = Value::Undefined(pname);
          continue;
        }
        auto v = Eval(*dflt);
        if (!v.ok()) {
          s = v.status();
          break;
        }
        frames_.back()[pname] = std::move(*v);
      }
    }
    std::string saved_out;
    saved_out.swap(out_);
    size_t outer_size = saved_out.size();
    ++call_depth_;
    if (s.ok()) s = ExecBodyCapped(m.body, outer_size);
    --call_depth_;
    std::string result;
    result.swap(out_);
    out_.swap(saved_out);
    frames_.swap(saved);
    if (!s.ok()) return s;
    return Value::Data(std::move(result));
  }

  // --- methods -----------------------------------------------------------

  absl::StatusOr<Value> CallMethod(const Value& recv, const std::string& name, const Args& a,
                                   int line) {
    auto unknown = [&]() {
      return Error(line, absl::StrCat("unsupported method '", name, "' on ", TypeName(recv)));
    };
    if (recv.is_string()) {
      const std::string& s = recv.str();
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        const Value* chars = a.Get(0, "chars");
        std::string set;
        bool custom = chars != nullptr && chars->is_string();
        if (custom) set = chars->str();
        return Value::Data(Strip(s, custom ? &set : nullptr, name != "rstrip", name != "lstrip"));
      }
      if (name == "startswith" || name == "endswith") {
        const Value* p = a.Get(0, "prefix");
        std::vector<std::string> options;
        if (p != nullptr && p->is_string()) {
          options.push_back(p->str());
        } else if (p != nullptr && p->is_array()) {
          for (const Json& o : p->json()) {
            if (o.is_string()) options.push_back(o.get<std::string>());
          }
        } else {
          return Error(line, absl::StrCat(name, "() takes a string or a list of strings"));
        }
        for (const std::string& o : options) {
          bool hit = name == "startswith"
                         ? s.compare(0, o.size(), o) == 0
                         : s.size() >= o.size() && s.compare(s.size() - o.size(), o.size(), o) == 0;
          if (hit) return Value::Data(true);
        }
        return Value::Data(false);
      }
      if (name == "split") return Split(s, a, line);
      if (name == "upper" || name == "lower") return Value::Data(MapCase(s, name == "upper"));
      if (name == "title") return Value::Data(PyTitle(s));
      if (name == "capitalize") return Value::Data(Capitalize(s));
      if (name == "replace") return Replace(s, a, line);
      if (name == "find") {
        auto sub = StrArg(a, 0, "sub", "find", line);
        if (!sub.ok()) return sub.status();
        size_t at = s.find(*sub);
        if (at == std::string::npos) return Value::Data(-1);
        return Value::Data(static_cast<int64_t>(SplitChars(s.substr(0, at)).size()));
      }
      if (name == "join") {
        const Value* items = a.Get(0, "iterable");
        if (items == nullptr) return Error(line, "join() takes one argument");
        return Join(*items, s, nullptr, line);
      }
      return unknown();
    }
    if (recv.is_object()) {
      const Json& d = recv.json();
      if (name == "items" || name == "keys" || name == "values") {
        absl::Status st = ChargeCopy(d, line);
        if (!st.ok()) return st;
        Json out = Json::array();
        for (const auto& [k, v] : d.items()) {
          if (name == "items") out.push_back(Json::array({k, v}));
          if (name == "keys") out.push_back(k);
          if (name == "values") out.push_back(v);
        }
        return Value::Data(std::move(out));
      }
      if (name == "get") {
        const Value* key = a.Get(0, "key");
        if (key != nullptr && key->is_string()) {
          auto it = d.find(key->str());
          if (it != d.end()) return Value::Ref(recv.owner, &*it);
        }
        const Value* dflt = a.Get(1, "default");
        return dflt != nullptr ? *dflt : Value::Data(nullptr);
      }
      return unknown();
    }
    if (recv.kind == Value::Kind::kLoop && name == "cycle") {
      if (a.pos.empty()) return Error(line, "loop.cycle() needs at least one value");
      return a.pos[static_cast<size_t>(recv.loop->index0) % a.pos.size()];
    }
    return unknown();
  }

  absl::StatusOr<Value> Split(const std::string& s, const Args& a, int line) {
    const Value* sep = a.Get(0, "sep");
    const Value* maxv = a.Get(1, "maxsplit");
    int64_t maxsplit = maxv != nullptr && maxv->is_int() ? IntOf(maxv->json()) : -1;
    Json out = Json::array();
    if (sep == nullptr || sep->is_null()) {
      std::vector<std::string_view> cs = SplitChars(s);
      size_t i = 0;
      while (i < cs.size()) {
        while (i < cs.size() && IsPySpace(CodePoint(cs[i]))) ++i;
        if (i == cs.size()) break;
        std::string word;
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
          for (; i < cs.size(); ++i) word.append(cs[i]);
          size_t e = word.size();
          out.push_back(Strip(word, nullptr, false, true));
          (void)e;
          break;
        }
        while (i < cs.size() && !IsPySpace(CodePoint(cs[i]))) word.append(cs[i++]);
        out.push_back(std::move(word));
      }
    } else {
      if (!sep->is_string()) return Error(line, "split(): separator must be a string");
      const std::string& d = sep->str();
      if (d.empty()) return Error(line, "split(): empty separator");
      size_t start = 0;
      while (true) {
        size_t at = s.find(d, start);
        if (at == std::string::npos ||
            (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
          out.push_back(s.substr(start));
          break;
        }
        out.push_back(s.substr(start, at - start));
        start = at + d.size();
      }
    }
    absl::Status st = Step(line, static_cast<int64_t>(out.size()));
    if (!st.ok()) return st;
    return Value::Data(std::move(out));
  }

  absl::StatusOr<Value> Replace(const std::string& s, const Args& a, int line) {
    auto from = StrArg(a, 0, "old", "replace", line);
    if (!from.ok()) return from.status();
    auto to = StrArg(a, 1, "new", "replace", line);
    if (!to.ok()) return to.status();
    const Value* countv = a.Get(2, "count");
    int64_t count = countv != nullptr && countv->is_int() ? IntOf(countv->json()) : -1;
    std::string out;
    if (from->empty()) {  // Python inserts `new` between characters
      std::vector<std::string_view> cs = SplitChars(s);
      for (size_t i = 0; i <= cs.size(); ++i) {
        if (count < 0 || static_cast<int64_t>(i) < count) out += *to;
        if (i < cs.size()) out.append(cs[i]);
        absl::Status st = CheckString(out.size(), line);
        if (!st.ok()) return st;
      }
      return Value::Data(std::move(out));
    }
    size_t start = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
      size_t at = s.find(*from, start);
      if (at == std::string::npos) break;
      out.append(s, start, at - start);
      out += *to;
      start = at + from->size();
      ++done;
      if (out.size() > limits_.max_output_bytes) break;
    }
    out.append(s, start, std::string::npos);
    absl::Status st = CheckString(out.size(), line);
    if (!st.ok()) return st;
    return Value::Data(std::move(out));
  }

  // Python str.title(): each run of cased letters starts upper, goes on lower.
  static std::string PyTitle(std::string_view s) {
    std::string out;
    bool prev_cased = false;
    for (std::string_view ch : SplitChars(s)) {
      int32_t cp = CodePoint(ch);
      if (IsCased(cp)) {
        AppendCodePoint(prev_cased ? utf8proc_tolower(cp) : utf8proc_toupper(cp), &out);
        prev_cased = true;
      } else {
        out.append(ch);
        prev_cased = false;
      }
    }
    return out;
  }

  // Jinja's title filter: words split at whitespace and -({[< only.
  static std::string JinjaTitle(std::string_view s) {
    std::string out;
    bool start = true;
    for (std::string_view ch : SplitChars(s)) {
      int32_t cp = CodePoint(ch);
      bool boundary = IsPySpace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
      if (boundary || cp < 0) {
        out.append(ch);
      } else {
        AppendCodePoint(start ? utf8proc_toupper(cp) : utf8proc_tolower(cp), &out);
      }
      start = boundary;
    }
    return out;
  }

  static std::string Capitalize(std::string_view s) {
    std::string out;
    bool first = true;
    for (std::string_view ch : SplitChars(s)) {
      int32_t cp = CodePoint(ch);
      if (cp < 0) {
        out.append(ch);
      } else {
        AppendCodePoint(first ? utf8proc_toupper(cp) : utf8proc_tolower(cp), &out);
      }
      first = false;
    }
    return out;
  }

  // Follows a dotted attribute path ("function.name", "0") into `v`.
  absl::StatusOr<Value> AttributePath(const Value& v, const std::string& path, int line) {
    Value cur = v;
    size_t start = 0;
    while (start <= path.size()) {
      size_t dot = path.find('.', start);
      std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      int64_t index;
      absl::StatusOr<Value> next = absl::SimpleAtoi(part, &index) && cur.is_array()
                                       ? GetItem(cur, Value::Data(index), line)
                                       : GetItem(cur, Value::Data(part), line);
      if (!next.ok()) return next;
      cur = std::move(*next);
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    return cur;
  }

  absl::StatusOr<Value> Join(const Value& items, const std::string& sep, const Value* attribute,
                             int line) {
    auto list = Iterate(items, line);
    if (!list.ok()) return list.status();
    std::string out;
    for (size_t i = 0; i < list->size(); ++i) {
      Value item = (*list)[i];
      if (attribute != nullptr && attribute->is_string()) {
        auto v = AttributePath(item, attribute->str(), line);
        if (!v.ok()) return v.status();
        item = std::move(*v);
      }
      auto s = ToStr(item, line);
      if (!s.ok()) return s.status();
      if (i > 0) out += sep;
      out += *s;
      absl::Status st = CheckString(out.size(), line);
      if (!st.ok()) return st;
    }
    return Value::Data(std::move(out));
  }

  // --- filters -----------------------------------------------------------

  absl::StatusOr<Value> EvalFilter(const Expr& e) {
    const std::string& f = e.name;
    auto subject = Eval(*e.children[0]);
    if (!subject.ok()) return subject;
    auto args = EvalArgs(e, 1);
    if (!args.ok()) return args.status();
    const Value& v = *subject;
    const Args& a = *args;
    int line = e.line;
    if (f == "default" || f == "d") {
      const Value* dflt = a.Get(0, "default_value");
      const Value* boolean = a.Get(1, "boolean");
      bool use = !v.defined() || (boolean != nullptr && Truthy(*boolean) && !Truthy(v));
      if (!use) return v;
      return dflt != nullptr ? *dflt : Value::Data("");
    }
    if (f == "safe") return v;
    if (f == "length" || f == "count") {
      if (!v.defined()) return Value::Data(0);
      if (v.is_string()) return Value::Data(static_cast<int64_t>(SplitChars(v.str()).size()));
      if (v.is_array() || v.is_object()) return Value::Data(static_cast<int64_t>(v.json().size()));
      if (v.kind == Value::Kind::kNamespace) return Value::Data(static_cast<int64_t>(v.ns->size()));
      return Error(line, absl::StrCat("object of type '", TypeName(v), "' has no length"));
    }
    if (f == "tojson") {
      auto j = ToJson(v, line);
      if (!j.ok()) return j.status();
      if (!v.defined()) return Error(line, absl::StrCat("'", v.name, "' is undefined (tojson)"));
      const Value* indent = a.Get(0, "indent");
      int ind = indent != nullptr && indent->is_int()
                    ? static_cast<int>(std::min<int64_t>(std::max<int64_t>(IntOf(indent->json()), 0), 16))
                    : -1;
      std::string out;
      PyJsonDump(*j, ind, 0, &out);
      absl::Status st = CheckString(out.size(), line);
      if (!st.ok()) return st;
      return Value::Data(std::move(out));
    }
    if (f == "first" || f == "last") {
      if (v.is_array()) {
        if (v.json().empty()) return Value::Undefined("first item of an empty list");
        return Value::Ref(v.owner, f == "first" ? &v.json().front() : &v.json().back());
      }
      auto items = Iterate(v, line);
      if (!items.ok()) return items.status();
      if (items->empty()) return Value::Undefined(f + " item of an empty sequence");
      return f == "first" ? items->front() : items->back();
    }
    if (f == "join") {
      const Value* sep = a.Get(0, "d");
      std::string d;
      if (sep != nullptr) {
        auto s = ToStr(*sep, line);
        if (!s.ok()) return s.status();
        d = *s;
      }
      return Join(v, d, a.Get(1, "attribute"), line);
    }
    if (f == "list") {
      auto items = Iterate(v, line);
      if (!items.ok()) return items.status();
      Json out = Json::array();
      for (const Value& i : *items) {
        auto j = ToJson(i, line);
        if (!j.ok()) return j.status();
        out.push_back(std::move(*j));
      }
      return Value::Data(std::move(out));
    }
    if (f == "items") {
      if (!v.defined()) return Value::Data(Json::array());
      if (!v.is_object()) return Error(line, absl::StrCat("items: '", TypeName(v), "' is not a dict"));
      return CallMethod(v, "items", Args(), line);
    }
    if (f == "reverse") {
      if (v.is_string()) {
        std::vector<std::string_view> cs = SplitChars(v.str());
        std::string out;
        for (auto it = cs.rbegin(); it != cs.rend(); ++it) out.append(*it);
        return Value::Data(std::move(out));
      }
      auto items = Iterate(v, line);
      if (!items.ok()) return items.status();
      Json out = Json::array();
      for (auto it = items->rbegin(); it != items->rend(); ++it) {
        auto j = ToJson(*it, line);
        if (!j.ok()) return j.status();
        out.push_back(std::move(*j));
      }
      return Value::Data(std::move(out));
    }
    if (f == "abs") {
      if (!v.is_number()) return Error(line, absl::StrCat("abs: '", TypeName(v), "' is not a number"));
      if (v.is_float()) return Value::Data(std::fabs(v.json().get<double>()));
      int64_t i = IntOf(v.json());
      if (i == INT64_MIN) return Error(line, "integer overflow in abs");
      return Value::Data(i < 0 ? -i : i);
    }
    if (f == "int" || f == "float") return ToNumber(v, a, f == "int", line);
    if (f == "round") {
      if (!v.is_number()) return Error(line, absl::StrCat("round: '", TypeName(v), "' is not a number"));
      const Value* prec = a.Get(0, "precision");
      const Value* method = a.Get(1, "method");
      int64_t p = prec != nullptr && prec->is_int() ? std::min<int64_t>(std::max<int64_t>(IntOf(prec->json()), -300), 300) : 0;
      std::string m = method != nullptr && method->is_string() ? method->str() : "common";
      double x = FloatOf(v.json()), scale = std::pow(10.0, static_cast<double>(p));
      double r = m == "floor" ? std::floor(x * scale) / scale
                 : m == "ceil" ? std::ceil(x * scale) / scale
                               : std::round(x * scale) / scale;
      return Value::Data(r);
    }
    if (f == "indent") return Indent(v, a, line);
    if (f == "select" || f == "reject" || f == "selectattr" || f == "rejectattr" || f == "map") {
      return SelectOrMap(f, v, a, line);
    }
    // String filters.
    auto text = ToStr(v, line);
    if (!text.ok()) return text.status();
    if (f == "string") return Value::Data(*text);
    if (f == "trim") {
      const Value* chars = a.Get(0, "chars");
      std::string set;
      bool custom = chars != nullptr && chars->is_string();
      if (custom) set = chars->str();
      return Value::Data(Strip(*text, custom ? &set : nullptr, true, true));
    }
    if (f == "upper" || f == "lower") return Value::Data(MapCase(*text, f == "upper"));
    if (f == "title") return Value::Data(JinjaTitle(*text));
    if (f == "capitalize") return Value::Data(Capitalize(*text));
    if (f == "replace") return Replace(*text, a, line);
    return Error(line, absl::StrCat("unsupported filter '", f, "'"));
  }

  absl::StatusOr<Value> ToNumber(const Value& v, const Args& a, bool to_int, int line) {
    const Value* dflt = a.Get(0, "default");
    Value fallback = dflt != nullptr ? *dflt : to_int ? Value::Data(0) : Value::Data(0.0);
    if (v.is_number()) {
      if (to_int) {
        if (!v.is_float()) return Value::Data(IntOf(v.json()));
        double d = v.json().get<double>();
        if (!(std::fabs(d) < 9.2e18)) return fallback;
        return Value::Data(static_cast<int64_t>(d));
      }
      return Value::Data(FloatOf(v.json()));
    }
    if (v.is_string()) {
      std::string s = Strip(v.str(), nullptr, true, true);
      int64_t i;
      double d;
      if (to_int) {
        const Value* base = a.Get(1, "base");
        int b = base != nullptr && base->is_int() ? static_cast<int>(IntOf(base->json())) : 10;
        if (b == 10 && absl::SimpleAtoi(s, &i)) return Value::Data(i);
        if (b != 10 && b >= 2 && b <= 36 && !s.empty()) {
          char* end = nullptr;
          long long r = std::strtoll(s.c_str(), &end, b);
          if (end != nullptr && *end == '\0') return Value::Data(static_cast<int64_t>(r));
        }
        if (absl::SimpleAtod(s, &d) && std::fabs(d) < 9.2e18) {
          return Value::Data(static_cast<int64_t>(d));
        }
        return fallback;
      }
      if (absl::SimpleAtod(s, &d)) return Value::Data(d);
    }
    (void)line;
    return fallback;
  }

  absl::StatusOr<Value> Indent(const Value& v, const Args& a, int line) {
    auto text = ToStr(v, line);
    if (!text.ok()) return text.status();
    const Value* width = a.Get(0, "width");
    const Value* first = a.Get(1, "first");
    const Value* blank = a.Get(2, "blank");
    std::string pad;
    if (width != nullptr && width->is_string()) {
      pad = width->str();
    } else {
      int64_t w = width != nullptr && width->is_int() ? IntOf(width->json()) : 4;
      pad.assign(static_cast<size_t>(std::min<int64_t>(std::max<int64_t>(w, 0), 1024)), ' ');
    }
    bool indent_first = first != nullptr && Truthy(*first);
    bool indent_blank = blank != nullptr && Truthy(*blank);
    std::string out;
    size_t start = 0;
    bool is_first = true;
    while (start <= text->size()) {
      size_t nl = text->find('\n', start);
      std::string_view ln(text->data() + start,
                          (nl == std::string::npos ? text->size() : nl) - start);
      if ((!is_first || indent_first) && (indent_blank || !Strip(ln, nullptr, true, true).empty())) {
        out += pad;
      }
      out.append(ln);
      absl::Status st = CheckString(out.size(), line);
      if (!st.ok()) return st;
      if (nl == std::string::npos) break;
      out.push_back('\n');
      start = nl + 1;
      is_first = false;
    }
    return Value::Data(std::move(out));
  }

  absl::StatusOr<Value> SelectOrMap(const std::string& f, const Value& v, const Args& a, int line) {
    auto items = Iterate(v, line);
    if (!items.ok()) return items.status();
    Json out = Json::array();
    for (const Value& item : *items) {
      Value subject = item;
      size_t test_at = 0;
      if (f == "selectattr" || f == "rejectattr" || f == "map") {
        const Value* attr = f == "map" ? a.Get(99, "attribute") : (a.pos.empty() ? nullptr : &a.pos[0]);
        if (f == "map" && attr == nullptr) {
          // map('filter_name', args...) applies a filter.
          if (a.pos.empty() || !a.pos[0].is_string()) return Error(line, "map() needs a filter name or attribute=");
          auto r = ApplyNamedFilter(a.pos[0].str(), item, line);
          if (!r.ok()) return r.status();
          auto j = ToJson(*r, line);
          if (!j.ok()) return j.status();
          out.push_back(std::move(*j));
          continue;
        }
        if (attr == nullptr || !attr->is_string()) return Error(line, f + "() needs an attribute name");
        auto got = AttributePath(item, attr->str(), line);
        if (!got.ok()) return got.status();
        subject = std::move(*got);
        if (f == "map") {
          if (!subject.defined()) {
            const Value* dflt = a.Get(99, "default");
            if (dflt != nullptr) subject = *dflt;
          }
          auto j = ToJson(subject, line);
          if (!j.ok()) return j.status();
          out.push_back(std::move(*j));
          continue;
        }
        test_at = 1;
      }
      bool pass;
      if (a.pos.size() <= test_at) {
        pass = Truthy(subject);
      } else {
        if (!a.pos[test_at].is_string()) return Error(line, f + "(): the test name must be a string");
        const std::string& test = a.pos[test_at].str();
        if (!IsTestName(test)) return Error(line, absl::StrCat("unsupported test '", test, "'"));
        std::vector<Value> targs(a.pos.begin() + static_cast<std::ptrdiff_t>(test_at) + 1, a.pos.end());
        auto r = ApplyTest(test, subject, targs, line);
        if (!r.ok()) return r.status();
        pass = *r;
      }
      if (pass == (f == "select" || f == "selectattr")) {
        auto j = ToJson(item, line);
        if (!j.ok()) return j.status();
        out.push_back(std::move(*j));
      }
    }
    return Value::Data(std::move(out));
  }

  // map('name'): the filter `name` (without arguments) applied to `v`.
  absl::StatusOr<Value> ApplyNamedFilter(const std::string& name, const Value& v, int line) {
    static const char* kMappable[] = {"string", "upper", "lower", "trim", "length", "count",
                                      "int", "float", "tojson", "first", "last", "title",
                                      "capitalize", "abs", "list", "reverse", "safe"};
    bool ok = false;
    for (const char* m : kMappable) ok = ok || name == m;
    if (!ok) return Error(line, absl::StrCat("map(): unsupported filter '", name, "'"));
    Expr call;  // `item | name`, with the item bound to a name no template can spell
    call.kind = Expr::Kind::kFilter;
    call.name = name;
    call.line = line;
    auto operand = std::make_unique<Expr>();
    operand->kind = Expr::Kind::kName;
    operand->name = " map item";
    operand->line = line;
    call.children.push_back(std::move(operand));
    frames_.emplace_back();
    frames_.back()[" map item"] = v;
    auto r = EvalFilter(call);
    frames_.pop_back();
    return r;
  }

  // --- tests -------------------------------------------------------------

  static bool IsTestName(const std::string& t) {
    static const char* kNames[] = {"defined", "undefined", "none", "boolean", "true", "false",
                                   "integer", "float", "number", "string", "mapping", "iterable",
                                   "sequence", "callable", "odd", "even", "divisibleby", "eq",
                                   "equalto", "ne", "lt", "le", "gt", "ge", "in", "lower",
                                   "upper", "sameas", "==", "!=", "<", "<=", ">", ">="};
    for (const char* n : kNames) {
      if (t == n) return true;
    }
    return false;
  }

  absl::StatusOr<bool> EvalTest(const Expr& e) {
    auto v = Eval(*e.children[0]);
    if (!v.ok()) return v.status();
    std::vector<Value> args;
    for (size_t i = 1; i < e.children.size(); ++i) {
      auto a = Eval(*e.children[i]);
      if (!a.ok()) return a.status();
      args.push_back(std::move(*a));
    }
    return ApplyTest(e.name, *v, args, e.line);
  }

  absl::StatusOr<bool> ApplyTest(const std::string& t, const Value& v, const std::vector<Value>& args,
                                 int line) {
    auto need = [&](size_t n) -> absl::Status {
      if (args.size() < n) return Error(line, absl::StrCat("test '", t, "' needs an argument"));
      return absl::OkStatus();
    };
    if (t == "defined") return v.defined();
    if (t == "undefined") return !v.defined();
    if (t == "none") return v.is_null();
    if (t == "boolean") return v.is_bool();
    if (t == "true") return v.is_bool() && v.json().get<bool>();
    if (t == "false") return v.is_bool() && !v.json().get<bool>();
    if (t == "integer") return v.is_int();
    if (t == "float") return v.is_float();
    if (t == "number") return v.is_number();
    if (t == "string") return v.is_string();
    if (t == "mapping") return v.is_object();
    if (t == "iterable") return v.is_string() || v.is_array() || v.is_object() || !v.defined();
    if (t == "sequence") return v.is_string() || v.is_array() || v.is_object();
    if (t == "callable") return v.kind == Value::Kind::kMacro || v.kind == Value::Kind::kBuiltin;
    if (t == "lower" || t == "upper") {
      if (!v.is_string()) return false;
      bool any = false;
      for (std::string_view ch : SplitChars(v.str())) {
        int32_t cp = CodePoint(ch);
        if (!IsCased(cp)) continue;
        any = true;
        bool is_upper = utf8proc_category(cp) != UTF8PROC_CATEGORY_LL;
        if (is_upper != (t == "upper")) return false;
      }
      return any;
    }
    if (t == "odd" || t == "even" || t == "divisibleby") {
      if (!v.is_int() && !v.is_bool()) {
        return Error(line, absl::StrCat("test '", t, "' needs an integer, not '", TypeName(v), "'"));
      }
      int64_t i = IntOf(v.json());
      if (t == "odd") return i % 2 != 0;
      if (t == "even") return i % 2 == 0;
      absl::Status s = need(1);
      if (!s.ok()) return s;
      if (!args[0].is_int() || IntOf(args[0].json()) == 0) {
        return Error(line, "divisibleby needs a non-zero integer");
      }
      int64_t d = IntOf(args[0].json());
      return d == -1 || i % d == 0;
    }
    absl::Status s = need(1);
    if (!s.ok()) return s;
    if (t == "eq" || t == "equalto" || t == "==") return Equal(v, args[0]);
    if (t == "ne" || t == "!=") return !Equal(v, args[0]);
    if (t == "sameas") {
      if (v.data() && args[0].data()) return v.json().type() == args[0].json().type() && Equal(v, args[0]);
      return Equal(v, args[0]);
    }
    if (t == "in") return Contains(args[0], v, line);
    std::string op = t == "lt" ? "<" : t == "le" ? "<=" : t == "gt" ? ">" : t == "ge" ? ">=" : t;
    return CompareOp(op, v, args[0], line);
  }

  // --- statements ----------------------------------------------------------

  absl::Status ExecBody(const Body& body) {
    for (const StmtPtr& s : body) {
      absl::Status st = Exec(*s);
      if (!st.ok()) return st;
      if (jump_ != Jump::kNone) return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  // ExecBody with output to out_, which is fresh; `outer_bytes` already
  // written elsewhere count against the output limit.
  absl::Status ExecBodyCapped(const Body& body, size_t outer_bytes) {
    size_t saved = limits_.max_output_bytes;
    limits_.max_output_bytes = saved > outer_bytes ? saved - outer_bytes : 0;
    absl::Status s = ExecBody(body);
    limits_.max_output_bytes = saved;
    return s;
  }

  absl::Status Assign(const std::vector<std::string>& targets, const Value& v, int line) {
    if (targets.size() == 1) {
      frames_.back()[targets[0]] = v;
      return absl::OkStatus();
    }
    if (!v.is_array() || v.json().size() != targets.size()) {
      return Error(line, absl::StrCat("cannot unpack '", TypeName(v), "' into ", targets.size(),
                                      " variables"));
    }
    for (size_t i = 0; i < targets.size(); ++i) {
      frames_.back()[targets[i]] = Value::Ref(v.owner, &v.json()[i]);
    }
    return absl::OkStatus();
  }

  absl::Status Exec(const Stmt& s) {
    absl::Status st = Step(s.line);
    if (!st.ok()) return st;
    switch (s.kind) {
      case Stmt::Kind::kText: return Emit(s.text, s.line);
      case Stmt::Kind::kOutput: {
        auto v = Eval(*s.expr);
        if (!v.ok()) return v.status();
        auto text = ToStr(*v, s.line);
        if (!text.ok()) return text.status();
        return Emit(*text, s.line);
      }
      case Stmt::Kind::kIf:
        for (const auto& [cond, body] : s.branches) {
          if (cond != nullptr) {
            auto c = Eval(*cond);
            if (!c.ok()) return c.status();
            if (!Truthy(*c)) continue;
          }
          return ExecBody(body);
        }
        return absl::OkStatus();
      case Stmt::Kind::kFor: return ExecFor(s);
      case Stmt::Kind::kSet: {
        auto v = Eval(*s.expr);
        if (!v.ok()) return v.status();
        if (s.attr.empty()) return Assign(s.targets, *v, s.line);
        Value target = Lookup(s.targets[0]);
        if (target.kind != Value::Kind::kNamespace) {
          return Error(s.line, absl::StrCat("cannot set '", s.attr, "' on '", s.targets[0],
                                            "': it is not a namespace()"));
        }
        auto j = ToJson(*v, s.line);
        if (!j.ok()) return j.status();
        (*target.ns)[s.attr] = std::move(*j);
        return absl::OkStatus();
      }
      case Stmt::Kind::kSetBlock: {
        std::string saved;
        saved.swap(out_);
        absl::Status r = ExecBodyCapped(s.body, saved.size());
        std::string captured;
        captured.swap(out_);
        out_.swap(saved);
        if (!r.ok()) return r;
        frames_.back()[s.targets[0]] = Value::Data(std::move(captured));
        return absl::OkStatus();
      }
      case Stmt::Kind::kMacro: {
        Value m;
        m.kind = Value::Kind::kMacro;
        m.macro = &s;
        frames_.back()[s.name] = m;
        return absl::OkStatus();
      }
      case Stmt::Kind::kBreak: jump_ = Jump::kBreak; return absl::OkStatus();
      case Stmt::Kind::kContinue: jump_ = Jump::kContinue; return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  absl::Status ExecFor(const Stmt& s) {
    auto iterable = Eval(*s.expr);
    if (!iterable.ok()) return iterable.status();
    auto all = Iterate(*iterable, s.line);
    if (!all.ok()) return all.status();
    std::vector<Value> items;
    if (s.filter == nullptr) {
      items = std::move(*all);
    } else {
      for (Value& item : *all) {
        frames_.emplace_back();
        absl::Status st = Assign(s.targets, item, s.line);
        absl::StatusOr<Value> keep = st.ok() ? Eval(*s.filter) : absl::StatusOr<Value>(st);
        frames_.pop_back();
        if (!keep.ok()) return keep.status();
        if (Truthy(*keep)) items.push_back(std::move(item));
      }
    }
    if (items.empty()) return ExecBody(s.else_body);
    auto info = std::make_shared<LoopInfo>();
    info->length = static_cast<int64_t>(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      info = std::make_shared<LoopInfo>(*info);
      info->index0 = static_cast<int64_t>(i);
      info->previtem = i > 0 ? items[i - 1] : Value::Undefined("loop.previtem");
      info->nextitem = i + 1 < items.size() ? items[i + 1] : Value::Undefined("loop.nextitem");
      frames_.emplace_back();
      Value loop;
      loop.kind = Value::Kind::kLoop;
      loop.loop = info;
      frames_.back()["loop"] = loop;
      absl::Status st = Assign(s.targets, items[i], s.line);
      if (st.ok()) st = ExecBody(s.body);
      frames_.pop_back();
      if (!st.ok()) return st;
      Jump j = jump_;
      jump_ = Jump::kNone;
      if (j == Jump::kBreak) break;
    }
    return absl::OkStatus();
  }

  RenderLimits limits_;
  std::vector<Frame> frames_;
  std::string out_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  Jump jump_ = Jump::kNone;
};

}  // namespace

std::string PythonFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  int precision = 1;
  for (; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*e", precision - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // buf is "[-]d.ddde[+-]XX": split into sign, digits and decimal exponent.
  std::string s = buf;
  bool negative = s[0] == '-';
  if (negative) s = s.substr(1);
  size_t e = s.find('e');
  int exponent = std::atoi(s.c_str() + e + 1);
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (s[i] != '.') digits.push_back(s[i]);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int decpt = exponent + 1;  // digits[0] is at 10^exponent
  std::string out = negative ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exp[16];
  std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out + exp;
}

absl::StatusOr<std::string> RenderProgram(const Program& program, const Json& globals,
                                          const RenderLimits& limits) {
  try {
    Interpreter interpreter(limits, globals);
    return interpreter.Run(program);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("internal JSON error: ", e.what()));
  }
}

}  // namespace streamlm::jinja_internal

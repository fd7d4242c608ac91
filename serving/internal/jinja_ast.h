// The syntax tree of a parsed Jinja template (the subset chat templates use;
// see serving/README.md). Built by ParseJinja (jinja_parser.h), read by the
// interpreter (jinja_interpreter.h). Immutable once built, so one tree can be
// rendered by many threads at once.
#ifndef STREAMLM_SERVING_INTERNAL_JINJA_AST_H_
#define STREAMLM_SERVING_INTERNAL_JINJA_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/json_util.h"

namespace streamlm::jinja_internal {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,      // literal
    kName,         // name
    kList,         // children: items (tuples are lists too)
    kDict,         // children: key0, value0, key1, value1, ...
    kGetAttr,      // children[0].name
    kGetItem,      // children[0][children[1]]
    kSlice,        // children[0][children[1]:children[2]:children[3]] (null = omitted)
    kCall,         // children[0](children[1..], kwargs)
    kFilter,       // children[0] | name(children[1..], kwargs)
    kTest,         // children[0] is [not] name(children[1..])
    kUnary,        // name ("not", "-", "+") children[0]
    kBinary,       // children[0] name children[1]: or and + - * / // % ** ~
    kCompare,      // children[0] ops[0] children[1] ops[1] ...: == != < <= > >= in
                   // "not in"; a < b < c is a < b and b < c, b evaluated once
    kConditional,  // children[0] if children[1] else children[2] (null = undefined)
  };
  Kind kind;
  int line = 0;
  Json literal;      // kLiteral
  std::string name;  // see Kind
  bool negated = false;  // kTest: "is not"
  std::vector<std::string> ops;  // kCompare
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  // kCall, kFilter
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches: (condition, body); condition null = else
    kFor,       // for targets in expr [if filter]: body [else else_body]
    kSet,       // set targets = expr, or set target.attr = expr (attr non-empty)
    kSetBlock,  // set targets[0] %}body{% endset
    kMacro,     // macro name(params) body
    kBreak,
    kContinue,
  };
  Kind kind;
  int line = 0;
  std::string text;                  // kText
  std::string name;                  // kMacro: its name
  std::string attr;                  // kSet of a namespace attribute
  ExprPtr expr;                      // kOutput, kFor (iterable), kSet (value)
  ExprPtr filter;                    // kFor: optional "if" condition
  std::vector<std::string> targets;  // kFor, kSet, kSetBlock
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf
  Body body;                         // kFor, kSetBlock, kMacro
  Body else_body;                    // kFor
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro: name, default (or null)
};

struct Program {
  Body body;
};

}  // namespace streamlm::jinja_internal

#endif  // STREAMLM_SERVING_INTERNAL_JINJA_AST_H_

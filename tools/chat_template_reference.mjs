// Renders well-known public chat templates over a set of conversations with
// @huggingface/jinja (an implementation independent of ours) and writes the
// results as the fixture serving/chat_template_test.cc checks against.
//
// Usage: node tools/chat_template_reference.mjs NODE_MODULES_DIR OUT.json
//   (scripts/npm_deps.sh installs @huggingface/jinja into build/npm).
// Regenerate the checked-in fixture with:
//   node tools/chat_template_reference.mjs build/npm/node_modules tests/data/chat_templates.json
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const [modulesDir, outPath] = process.argv.slice(2);
if (!modulesDir || !outPath) {
  console.error("usage: chat_template_reference.mjs NODE_MODULES_DIR OUT.json");
  process.exit(2);
}
const require = createRequire(path.resolve(modulesDir) + "/");
const { Template } = require("@huggingface/jinja");
const jinjaVersion = JSON.parse(
  readFileSync(path.join(modulesDir, "@huggingface/jinja/package.json"), "utf8"),
).version;

// Template sources, as published in each model's tokenizer_config.json.
const templates = {
  // Qwen/Qwen2.5-*-Instruct (ChatML with a default system message and tools).
  chatml_qwen2_5: String.raw`{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
`,
  // meta-llama/Llama-2-7b-chat-hf.
  llama2_chat: String.raw`{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}`,
  // meta-llama/Meta-Llama-3-8B-Instruct.
  llama3_instruct: String.raw`{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`,
  // mistralai/Mistral-7B-Instruct-v0.3.
  mistral_instruct: String.raw`{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.last and system_message is defined %}
            {{- '[INST] ' + system_message + '\n\n' + message['content'] + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'] + '[/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
`,
  // HuggingFaceH4/zephyr-7b-beta: relies on trim_blocks / lstrip_blocks.
  zephyr: `{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>
'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}`,
  // transformers' former default for GPT-2 (GPT2Tokenizer.default_chat_template).
  gpt2_plain: "{% for message in messages %}{{ message.content }}{{ eos_token }}{% endfor %}",
  // StreamLM's DefaultChatTemplate() (serving/chat_template.cc); the C++
  // test checks the two sources are identical.
  default: String.raw`{#- StreamLM default chat template: a plain transcript. -#}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}
        {{- 'System: ' }}
    {%- elif message['role'] == 'user' %}
        {{- 'User: ' }}
    {%- elif message['role'] == 'assistant' %}
        {{- 'Assistant: ' }}
    {%- else %}
        {{- message['role'] | capitalize + ': ' }}
    {%- endif %}
    {{- message['content'] | trim + '\n\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- 'Assistant:' }}
{%- endif %}
`,
};

// Small templates, one per group of Jinja features the renderer supports,
// rendered over the "features" conversation below. Kept to constructs on
// which @huggingface/jinja and Python's Jinja2 (what transformers uses)
// agree; e.g. no booleans printed bare (True vs true) and dicts with keys
// in sorted order.
const features = {
  feat_loop: String.raw`{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.length }}/{{ loop.revindex }}{{ ' first' if loop.first }}{{ ' last' if loop.last }};{% endfor %}`,
  feat_loop_else_filter: String.raw`{% for m in messages if m.role == 'nobody' %}x{% else %}empty{% endfor %}|{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role[0] }}{% endfor %}|{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}|{% for i in range(1, 8, 3) %}{{ i }}{% endfor %}`,
  feat_namespace: String.raw`{% set ns = namespace(users=0, last='') %}{% for m in messages %}{% if m['role'] == 'user' %}{% set ns.users = ns.users + 1 %}{% set ns.last = m.content %}{% endif %}{% endfor %}{{ ns.users }} users, last: {{ ns.last }}`,
  feat_scoping: String.raw`{% set x = 'outer' %}{% for m in messages %}{% set x = 'inner' ~ loop.index %}{% endfor %}{{ x }}|{% if true %}{% set y = 'if-set' %}{% endif %}{{ y }}`,
  feat_subscripts: String.raw`{{ messages[1:] | length }}|{{ messages[-1].content }}|{{ (messages | last).role }}|{{ (messages | first)['role'] }}|{{ messages[0]['content'][:4] }}|{{ 'abcdef'[1:4] }}|{{ 'abcdef'[::-2] }}|{{ messages[1:3][0].role }}|{{ 'héllo'[1] }}|{{ [1, 2, 3][-2] }}`,
  feat_string_methods: String.raw`[{{ '  x y  '.strip() }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}]{{ 'a,b,,c'.split(',') | join('+') }}|{{ ' a  b\tc '.split() | join('+') }}|{{ 'Hello'.upper() }}{{ 'Hello'.lower() }}|{{ 'yes' if 'abc'.startswith('ab') else 'no' }}{{ 'yes' if 'abc'.endswith('bc') else 'no' }}{{ 'yes' if 'abc'.startswith('b') else 'no' }}|{{ 'a-b-c'.replace('-', '=') }}|{{ messages[0].content.split(' ')[0] }}`,
  feat_filters: String.raw`{{ '  padded  ' | trim }}|{{ messages | length }}|{{ 'mixed Case' | upper }}|{{ 'MIXED Case' | lower }}|{{ 'café' | upper }}|{{ undefined_name | default('fallback') }}|{{ '' | default('empty', true) }}|{{ 'x' | default('unused') }}|{{ messages | map(attribute='role') | join(',') }}|{{ ['a', 'b'] | join }}|{{ 'aXbXc' | replace('X', '-') }}|{{ 42 | string ~ '!' }}|{{ '42' | int + 1 }}|{{ 3.7 | int }}|{{ 'zz' | int }}|{{ 'hello world' | capitalize }}|{{ 'abc' | length }}|{{ messages[0] | tojson }}|{{ [1, 'two', none, 2.5] | tojson }}|{{ 'quote " and \\ and\nnewline' | tojson }}|{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(' / ') }}`,
  feat_arithmetic: String.raw`{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 * 3 + 1 }} {{ 2 + 3 * 4 }} {{ (2 + 3) * 4 }} {{ 7 / 2 }} {{ 'ab' ~ 3 ~ 4.5 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 10 - 2 - 3 }}`,
  feat_logic: String.raw`{{ 'a' if 1 < 2 and not (3 > 4) else 'b' }}{{ 'c' if false or 0 or '' else 'd' }}{{ 'e' if 'ss' in 'class' else 'f' }}{{ 'g' if 'user' not in messages | map(attribute='role') else 'h' }}{{ 'i' if messages[0].role == 'system' != false else 'j' }}{{ 'k' if 2 >= 2 and 3 <= 2 else 'l' }}{{ 'm' if none else 'n' }}{{ 'o' if [] else 'p' }}{{ 'q' if 'x' else 'r' }}{{ (messages[0].role == 'system') | string | lower }}`,
  feat_tests: String.raw`{{ 'a' if messages is defined }}{{ 'b' if nothing is not defined }}{{ 'c' if nothing is undefined }}{{ 'd' if none is none }}{{ 'e' if messages[0].content is string }}{{ 'f' if 3 is number }}{{ 'g' if messages[0] is mapping }}{{ 'h' if messages is iterable }}{{ 'i' if 3 is odd }}{{ 'j' if 4 is even }}{{ 'l' if 'x' is not none }}{{ 'm' if 1 is string else 'n' }}{{ 'o' if messages[0].missing is defined else 'p' }}{{ 'q' if 3 is integer }}`,
  feat_macro: String.raw`{% macro turn(m, prefix='> ') -%}
{{ prefix }}{{ m.role }}: {{ m.content }}
{% endmacro -%}
{% for m in messages %}{{ turn(m) }}{% endfor %}{{ turn(messages[0], prefix='# ') }}`,
  feat_whitespace: `Start
  {% for m in messages %}
    {{ m.role }}
  {% endfor %}
  {#- a comment -#}
  {{- ' tight ' -}}
  after
{% if true %}
    indented line kept
{% endif %}
  {% set z = 1 %}
end {{ 'x' }}
{{ 'y' }}   
last line
`,
  feat_literals: String.raw`{{ "tab\there" }}|{{ 'it\'s' }}|{{ "uni: \u00e9\u4e16" }}|{{ ['x', 'y'][1] }}|{{ {'k': 'v'}['k'] }}|{{ {'k': 'v'}.k }}|{{ 1000 + 1 }}|{{ messages[0].get('role') }}|{{ messages[0].get('missing', 'dflt') }}|{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}`,
  feat_set_block: String.raw`{% set header %}[{{ messages | length }} turns]{% endset %}{{ header }} {{ header | length }}`,
};

const special = {
  llama2_chat: { bos_token: "<s>", eos_token: "</s>" },
  llama3_instruct: { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
  mistral_instruct: { bos_token: "<s>", eos_token: "</s>" },
  zephyr: { bos_token: "<s>", eos_token: "</s>" },
  gpt2_plain: { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" },
  chatml_qwen2_5: { eos_token: "<|im_end|>" },
  default: {},
};
for (const name of Object.keys(features)) special[name] = { bos_token: "<s>", eos_token: "</s>" };

const m = (role, content) => ({ content, role });  // keys sorted, as nlohmann::json keeps them
const conversations = {
  single_user: [m("user", "Hello!")],
  with_system: [m("system", "You are a terse assistant."), m("user", "What is 2+2?")],
  multi_turn: [
    m("user", "Hi there"),
    m("assistant", "Hello! How can I help?"),
    m("user", "Tell me a joke.\nA short one."),
  ],
  system_multi_turn: [
    m("system", "Be kind."),
    m("user", "  padded question  "),
    m("assistant", "An answer. "),
    m("user", "Thanks"),
  ],
  unicode: [m("user", "Grüße, 世界! 🙂 naïve café — «quotes» \u00a0nbsp"), m("assistant", "Καλημέρα 👋🏽")],
  jinja_looking: [
    m("user", "Render {{ messages }} and {% if x %}y{% endif %} {# not a comment #} literally"),
    m("assistant", "{%- raw -%} '\"\\ ok"),
  ],
  empty_content: [m("user", ""), m("assistant", "")],
  bad_alternation: [m("user", "one"), m("user", "two")],
  starts_with_assistant: [m("assistant", "I speak first"), m("user", "ok")],
  tool_role: [m("user", "hi"), m("tool", "result")],
};

// A tool-calling conversation for the Qwen template (objects with keys in
// sorted order: nlohmann::json orders keys, so tojson output matches).
const qwenTools = [
  {
    function: {
      description: "Get the weather",
      name: "get_weather",
      parameters: { properties: { city: { type: "string" } }, required: ["city"], type: "object" },
    },
    type: "function",
  },
];
const qwenToolConversation = [
  m("user", "Weather in Paris?"),
  {
    content: "",
    role: "assistant",
    tool_calls: [{ function: { arguments: { city: "Paris" }, name: "get_weather" }, type: "function" }],
  },
  m("tool", '{"temp_c": 21}'),
  m("tool", '{"humidity": 0.4}'),
];

const cases = [];
function addCase(template, conversation, messages, addGenerationPrompt, extraVars = {}) {
  const vars = { ...special[template], ...extraVars };
  const c = { template, conversation, messages, vars, add_generation_prompt: addGenerationPrompt };
  try {
    c.expected = new Template(templates[template]).render({
      ...vars,
      messages,
      add_generation_prompt: addGenerationPrompt,
    });
  } catch (e) {
    c.error = String(e.message);
  }
  cases.push(c);
}

for (const template of Object.keys(templates)) {
  for (const [name, messages] of Object.entries(conversations)) {
    for (const agp of [true, false]) addCase(template, name, messages, agp);
  }
}
addCase("chatml_qwen2_5", "tool_calls", qwenToolConversation, true, { tools: qwenTools });
Object.assign(templates, features);
for (const template of Object.keys(features)) {
  addCase(template, "system_multi_turn", conversations.system_multi_turn, true);
}

writeFileSync(
  outPath,
  JSON.stringify({ generator: `@huggingface/jinja ${jinjaVersion}`, templates, cases }, null, 1) + "\n",
);
console.log(`wrote ${cases.length} cases to ${outPath}`);

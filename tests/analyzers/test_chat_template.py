"""Static chat-template analysis: real templates stay clean, sandbox escapes are critical."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.analyzers.chat_template import analyze_template
from modelshield.formats.interface import Blob, ScanContext
from modelshield.limits import Limits
from modelshield.types import Finding, Severity

LLAMA2 = """{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"""  # noqa: E501

LLAMA3 = """{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"""  # noqa: E501

LLAMA31_TOOLS = """{{- bos_token }}
{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}
{%- if not tools_in_user_message is defined %}{%- set tools_in_user_message = true %}{%- endif %}
{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}{{- "Environment: ipython\\n" }}{%- endif %}
{%- if builtin_tools is defined %}
{{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- set ns = namespace(found_first=false) %}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}
        {{- message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}{{- ", " }}{%- endif %}
            {%- endfor %}
            {{- ")" }}
        {%- else %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
            {%- set ns.found_first = true %}
        {%- endif %}
        {{- "<|eom_id|>" if builtin_tools is defined else "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}
"""

GEMMA = """{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"""  # noqa: E501

MISTRAL = """{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}{{- bos_token }}{%- for message in loop_messages %}{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}{%- if message['role'] == 'user' %}{%- if loop.first and system_message is defined %}{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token}}{%- else %}{{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}{%- endif %}{%- endfor %}"""  # noqa: E501

QWEN = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}
    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n<tools>" }}
    {%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
    {{- "\\n</tools><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}{%- set content = message.content %}{%- else %}{%- set content = '' %}{%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if tool_call.function %}{%- set tool_call = tool_call.function %}{%- endif %}
                {{- '<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}{{- tool_call.arguments }}{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}
                {{- '}\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\\n<tool_response>\\n' }}{{- content }}{{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- '<|im_end|>\\n' }}{%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}
"""  # noqa: E501

PHI3 = """{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"""  # noqa: E501

HF_GENERATION = """{% for message in messages %}{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}{% endgeneration %}{% else %}{{ message['content'] }}{% endif %}{% if loop.last %}{% break %}{% endif %}{% endfor %}"""  # noqa: E501

BENIGN = {
    "llama2": LLAMA2,
    "llama3": LLAMA3,
    "llama3.1-tools": LLAMA31_TOOLS,
    "gemma": GEMMA,
    "mistral": MISTRAL,
    "qwen-chatml": QWEN,
    "phi3": PHI3,
    "hf-generation": HF_GENERATION,
}

MALICIOUS = {
    "self-globals": "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('touch CANARY').read() }}",
    "cycler": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "joiner": "{% for m in messages %}{{ m.content }}{% endfor %}{{ joiner.__init__.__globals__.os.system('id') }}",
    "lipsum-item": "{{ lipsum['__globals__']['os'].popen('id').read() }}",
    "namespace-walk": "{% set ns = namespace(x=1) %}{{ namespace.__init__.__globals__.os.popen('id') }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "attr-filter": "{{ request|attr('application')|attr('\\x5f\\x5fglobals\\x5f\\x5f') }}",
    "concat": "{{ (messages|attr('__cla' ~ 'ss__')).__base__ }}",
    "plus-repeat": "{% set n = '_' * 2 + 'globals' + '_' * 2 %}{{ lipsum|attr(n) }}",
    "join": "{{ cycler|attr(['_', '_', 'init', '_', '_']|join) }}",
    "reverse": "{{ cycler|attr('__tini__'|reverse) }}",
    "format-string": "{{ '{0.__class__.__base__}'.format(messages) }}",
    "map-attribute": "{{ messages|map(attribute='__class__')|list }}",
    "config": "{{ config.items() }}",
    "dynamic-attr": "{% set a = messages[0].content %}{{ messages|attr(a) }}",
    "private": "{{ self._TemplateReference__context }}",
}


def _ctx() -> ScanContext:
    blob = Blob("template.jinja", (), 0, lambda: io.BytesIO())
    return ScanContext(blob, Limits())


def _findings(source: str) -> list[Finding]:
    return list(analyze_template(source, _ctx(), "test"))


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_real_templates_stay_clean(name: str) -> None:
    assert _findings(BENIGN[name]) == []


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_escapes_are_reported(name: str) -> None:
    findings = _findings(MALICIOUS[name])
    assert findings, name
    assert max(f.severity for f in findings) >= Severity.HIGH
    assert all(f.location.detail == "test" for f in findings)


@pytest.mark.parametrize(
    "name", ["self-globals", "cycler", "lipsum-item", "subclasses", "concat", "plus-repeat", "join", "reverse"]
)
def test_dunder_walks_are_critical_and_cite_the_cve(name: str) -> None:
    critical = [f for f in _findings(MALICIOUS[name]) if f.rule_id == "TEMPLATE-SSTI"]
    assert critical and critical[0].severity is Severity.CRITICAL
    assert "CVE-2024-34359" in critical[0].references


def test_namespace_for_loop_state_is_not_a_gadget() -> None:
    source = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}"
    assert _findings(source) == []


def test_findings_name_the_construct_and_line() -> None:
    source = "{{ bos_token }}\n{% for m in messages %}{{ m.content }}{% endfor %}\n{{ cycler.__init__.__globals__ }}"
    (critical,) = [f for f in _findings(source) if f.rule_id == "TEMPLATE-SSTI"]
    assert "__globals__" in critical.message and "line 3" in critical.message
    assert "cycler.__init__" in critical.evidence


def test_unparseable_template_is_a_coverage_finding() -> None:
    (finding,) = _findings("{% for m in messages %}{{ m.content }")
    assert finding.rule_id == "TEMPLATE-UNANALYSED"
    assert finding.severity is Severity.MEDIUM


def test_deeply_nested_template_is_reported_not_raised() -> None:
    source = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"
    findings = _findings(source)
    assert [f.rule_id for f in findings] == ["TEMPLATE-UNANALYSED"]


def test_huge_integer_literal_is_reported_not_raised() -> None:
    findings = _findings("{{ " + "1" * 5000 + " }}")
    assert [f.rule_id for f in findings] == ["TEMPLATE-UNANALYSED"]


def test_template_is_never_rendered() -> None:
    # A template whose rendering would raise: analysis must not render, so it stays clean.
    assert _findings("{{ raise_exception('boom') }}{{ undefined_thing.x.y }}") == []


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=list("{}%#()[]|.'\"_~+*abcxy =-,:\n"), max_size=200), st.text(max_size=200)))
def test_arbitrary_text_never_raises(source: str) -> None:
    for finding in _findings(source):
        assert finding.rule_id in {"TEMPLATE-SSTI", "TEMPLATE-SUSPICIOUS", "TEMPLATE-UNANALYSED"}

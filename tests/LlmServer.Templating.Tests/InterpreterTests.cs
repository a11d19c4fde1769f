using Microsoft.Extensions.Time.Testing;

namespace LlmServer.Templating.Tests;

/// <summary>The interpreter's features one by one, with the output Python's Jinja gives.</summary>
public sealed class InterpreterTests
{
    private static string Render(string template, params (string Name, object? Value)[] variables) =>
        JinjaTemplate.Parse(template).Render(variables.ToDictionary(v => v.Name, v => v.Value), new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 9, 5, 0, TimeSpan.Zero)));

    private static JinjaList List(params object?[] items) => new(items);

    private static JinjaDict Dict(params (string Key, object? Value)[] entries)
    {
        var dict = new JinjaDict();
        foreach (var (key, value) in entries)
        {
            dict.Set(key, value);
        }

        return dict;
    }

    [Theory]
    [InlineData("{{ 1 + 2 * 3 }}", "7")]
    [InlineData("{{ 7 / 2 }}", "3.5")]
    [InlineData("{{ 6 / 2 }}", "3.0")]
    [InlineData("{{ -7 // 2 }}", "-4")]
    [InlineData("{{ -7 % 3 }}", "2")]
    [InlineData("{{ 2 ** 10 }}", "1024")]
    [InlineData("{{ 'a' ~ 1 ~ none }}", "a1None")]
    [InlineData("{{ 'ab' * 3 }}", "ababab")]
    [InlineData("{{ [1, 2] + [3] }}", "[1, 2, 3]")]
    [InlineData("{{ 1 == 1.0 }}", "True")]
    [InlineData("{{ 1 < 2 < 3 }}", "True")]
    [InlineData("{{ 'b' in 'abc' and 'z' not in ['a'] }}", "True")]
    [InlineData("{{ 'yes' if 0 else 'no' }}", "no")]
    [InlineData("{{ 'x' if false }}", "")]
    [InlineData("{{ not [] }}", "True")]
    [InlineData("{{ 0 or 'fallback' }}", "fallback")]
    [InlineData("{{ (1, 'a') }}", "(1, 'a')")]
    [InlineData("{{ {'a': [1, 2.5, none, true], 'b': \"it's\"} }}", "{'a': [1, 2.5, None, True], 'b': \"it's\"}")]
    [InlineData("{{ 1e-5 }} {{ 1e16 }} {{ 0.1 + 0.2 }} {{ 100.0 }}", "1e-05 1e+16 0.30000000000000004 100.0")]
    public void Expressions_follow_python(string template, string expected) => Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ 'abcdef'[1:4] }}", "bcd")]
    [InlineData("{{ 'abcdef'[::-1] }}", "fedcba")]
    [InlineData("{{ 'abcdef'[::2] }}", "ace")]
    [InlineData("{{ [1, 2, 3, 4][-2:] }}", "[3, 4]")]
    [InlineData("{{ [1, 2, 3, 4][5:] }}", "[]")]
    [InlineData("{{ [1, 2, 3][-1] }}", "3")]
    public void Slicing_and_indexing_follow_python(string template, string expected) => Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ '  hi  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '--a'.lstrip('-') }}|{{ 'a\\n'.rstrip() }}", "hi|hi|a|a")]
    [InlineData("{{ 'a,b,,c'.split(',') }}", "['a', 'b', '', 'c']")]
    [InlineData("{{ ' a  b '.split() }}", "['a', 'b']")]
    [InlineData("{{ 'a.b.c'.rsplit('.', 1) }}", "['a.b', 'c']")]
    [InlineData("{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }}", "True True")]
    [InlineData("{{ 'hello world'.title() }} {{ 'ABC'.lower() }} {{ 'abc'.upper() }}", "Hello World abc ABC")]
    [InlineData("{{ 'aaa'.replace('a', 'b', 2) }} {{ 'abc'.find('c') }} {{ 'abca'.count('a') }}", "bba 2 2")]
    [InlineData("{{ '{} and {name}'.format(1, name='x') }}", "1 and x")]
    public void String_methods_follow_python(string template, string expected) => Assert.Equal(expected, Render(template));

    [Fact]
    public void List_and_dict_methods_mutate_and_read()
    {
        const string Template =
            "{% set l = [3, 1] %}{% do l.append(2) %}{{ l }} {{ l.pop() }} {{ l.index(1) }}" +
            "{% set d = {'a': 1} %}{% do d.update({'b': 2}) %} {{ d.get('b') }} {{ d.get('z', 'none') }} {{ d.keys() | list }} {{ d.values() | list }}" +
            "{% for k, v in d.items() %} {{ k }}={{ v }}{% endfor %}";
        Assert.Equal("[3, 1, 2] 2 1 2 none ['a', 'b'] [1, 2] a=1 b=2", Render(Template));
    }

    [Theory]
    [InlineData("{{ x | tojson }}", "{\"b\": [1, 2.0, null, true], \"a\": \"é\\\"\"}")]
    [InlineData("{{ x | tojson(indent=2) }}", "{\n  \"b\": [\n    1,\n    2.0,\n    null,\n    true\n  ],\n  \"a\": \"é\\\"\"\n}")]
    [InlineData("{{ x | tojson(separators=(',', ':'), sort_keys=true) }}", "{\"a\":\"é\\\"\",\"b\":[1,2.0,null,true]}")]
    [InlineData("{{ x | tojson(ensure_ascii=true) }}", "{\"b\": [1, 2.0, null, true], \"a\": \"\\u00e9\\\"\"}")]
    public void Tojson_matches_python_json_dumps(string template, string expected) =>
        Assert.Equal(expected, Render(template, ("x", Dict(("b", List(1L, 2.0, null, true)), ("a", "é\"")))));

    [Theory]
    [InlineData("{{ '  a ' | trim }}|{{ 'abc' | length }}|{{ [1, 2] | count }}", "a|3|2")]
    [InlineData("{{ users | map(attribute='name') | join(', ') }}", "ann, bob")]
    [InlineData("{{ users | selectattr('admin') | map(attribute='name') | list }}", "['ann']")]
    [InlineData("{{ users | rejectattr('admin') | map(attribute='name') | first }}", "bob")]
    [InlineData("{{ users | selectattr('name', 'equalto', 'bob') | list | length }}", "1")]
    [InlineData("{{ [1, 2, 3, 4] | select('even') | list }} {{ [1, 2, 3] | reject('odd') | list }}", "[2, 4] [2]")]
    [InlineData("{{ missing | default('d') }} {{ '' | default('e', true) }} {{ 0 | default(5) }}", "d e 0")]
    [InlineData("{{ 'hello' | upper }} {{ 'HeLLo' | lower }} {{ 'hello world' | capitalize }} {{ 'a b' | title }}", "HELLO hello Hello world A B")]
    [InlineData("{{ 'aXbX' | replace('X', '-') }} {{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }}", "a-b- 3 2")]
    [InlineData("{{ '42' | int + 1 }} {{ 'x' | int }} {{ '2.5' | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }}", "43 0 2.5 3 2.57 2.0 4.0")]
    [InlineData("{{ [3, 1, 3, 2] | unique | list }} {{ [3, 1, 2] | sort }} {{ [1, 2] | reverse | list }} {{ 'ab' | reverse }}", "[3, 1, 2] [1, 2, 3] [2, 1] ba")]
    [InlineData("{{ {'b': 1, 'a': 2} | dictsort }} {{ {'b': 1} | items | list }}", "[('a', 2), ('b', 1)] [('b', 1)]")]
    [InlineData("{{ 'a\\nb' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}", "a\n  b|  a\n  b")]
    [InlineData("{{ 'one two  three' | wordcount }} {{ [1, 2, 3] | batch(2) | list }}", "3 [[1, 2], [3]]")]
    [InlineData("{{ '<a href=\"x\">' | escape }} {{ 1 | string ~ 'x' }} {{ 'ab' | list }} {{ x | safe }}", "&lt;a href=&#34;x&#34;&gt; 1x ['a', 'b'] ")]
    public void Filters(string template, string expected) =>
        Assert.Equal(expected, Render(template, ("users", List(Dict(("name", "ann"), ("admin", true)), Dict(("name", "bob"), ("admin", false))))));

    [Theory]
    [InlineData("{{ x is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }}", "True True True True True")]
    [InlineData("{{ 1 is integer }} {{ 1.0 is integer }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is sequence }}", "True False True True True")]
    [InlineData("{{ true is boolean }} {{ true is true }} {{ 0 is false }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }}", "True True False True True True")]
    [InlineData("{{ 'a' is equalto 'a' }} {{ 2 is eq(2) }} {{ 'a' is in ['a'] }} {{ x is not none }}", "True True True True")]
    public void Tests(string template, string expected) => Assert.Equal(expected, Render(template, ("x", 1L)));

    [Fact]
    public void Loop_variables()
    {
        const string Template =
            "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}" +
            "{{ loop.length }}{{ loop.previtem | default('-') }}{{ loop.nextitem | default('-') }}{{ loop.cycle('o', 'e') }};{% endfor %}";
        Assert.Equal("103TrueFalse3-bo;212FalseFalse3ace;321FalseTrue3b-o;", Render(Template));
    }

    [Fact]
    public void For_with_filter_else_unpacking_and_scoping()
    {
        const string Template =
            "{% set total = 0 %}{% for x in [1, 2, 3, 4] if x is even %}{% set total = total + x %}{{ x }}{{ loop.length }} {% endfor %}{{ total }}" +
            "|{% for x in [] %}never{% else %}empty{% endfor %}" +
            "|{% for k, v in [('a', 1), ('b', 2)] %}{{ k }}{{ v }}{% endfor %}" +
            "|{% set ns = namespace(sum=0) %}{% for x in [1, 2] %}{% set ns.sum = ns.sum + x %}{% endfor %}{{ ns.sum }}" +
            "|{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}" +
            "|{{ range(1, 10, 4) | list }} {{ range(3, 0, -1) | list }}";
        Assert.Equal("22 42 0|empty|a1b2|3|02|[1, 5, 9] [3, 2, 1]", Render(Template));
    }

    [Fact]
    public void Set_block_filter_block_macro_call_and_raw()
    {
        const string Template =
            "{% set greeting | upper %}hi {{ name }}{% endset %}{{ greeting }}" +
            "|{% filter replace('a', 'o') %}banana{% endfilter %}" +
            "|{% macro tag(name, cls='x') %}<{{ name }} class={{ cls }}>{{ caller() if caller is defined else '' }}</{{ name }}>{% endmacro %}{{ tag('p') }}{{ tag('b', cls='y') }}" +
            "|{% call tag('i') %}inside{% endcall %}" +
            "|{% raw %}{{ not rendered }}{% endraw %}" +
            "|{% generation %}kept{% endgeneration %}" +
            "|{{ dict(a=1) }} {{ namespace(a=1).a }}";
        Assert.Equal("HI ANN|bonono|<p class=x></p><b class=y></b>|<i class=x>inside</i>|{{ not rendered }}|kept|{'a': 1} 1", Render(Template, ("name", "ann")));
    }

    [Theory]

    // trim_blocks drops the newline after a block tag; lstrip_blocks drops the indentation before one.
    [InlineData("{% if true %}\n  yes\n{% endif %}\n", "  yes\n")]
    [InlineData("  {% if true %}x{% endif %}", "x")]
    [InlineData("a  {%- if true -%}  b  {%- endif -%}  c", "abc")]
    [InlineData("a\n{{- 'b' -}}\nc", "abc")]
    [InlineData("{{ 'a' }}\n{{ 'b' }}", "a\nb")]
    [InlineData("{# comment #}\nx", "x")]
    [InlineData("line\n", "line")]
    public void Whitespace_control_matches_chat_template_rendering(string template, string expected) => Assert.Equal(expected, Render(template));

    [Fact]
    public void Undefined_is_lenient()
    {
        Assert.Equal("[][]|0|ok|", Render("[{{ missing }}][{{ missing.attr.deeper }}]|{{ missing | length }}|{% for x in missing %}x{% endfor %}{% if not missing %}ok{% endif %}|{{ msg.content }}", ("msg", Dict())));
        Assert.Equal("a", Render("{{ 'a' + missing }}"));
    }

    [Fact]
    public void Strftime_now_reads_the_injected_clock() =>
        Assert.Equal("01 Dec 2026 2026-12-01 09:05 Tuesday", Render("{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M %A') }}"));

    [Fact]
    public void Raise_exception_carries_the_message_and_place()
    {
        var error = Assert.Throws<TemplateRaisedException>(() => Render("line one\n  {{ raise_exception('No system role!') }}"));
        Assert.Equal("No system role!", error.Reason);
        Assert.Equal(2, error.Line);
        Assert.Equal(21, error.Column);
    }

    [Theory]
    [InlineData("{% if x %}unclosed", 1)]
    [InlineData("ok\n{{ 1 + }}", 2)]
    [InlineData("{% for %}{% endfor %}", 1)]
    [InlineData("{% bogus %}", 1)]
    public void Syntax_errors_carry_the_line(string template, int line)
    {
        var error = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse(template));
        Assert.Equal(line, error.Line);
        Assert.True(error.Column > 0);
    }

    [Fact]
    public void Runtime_errors_carry_the_place()
    {
        var error = Assert.Throws<TemplateException>(() => Render("\n\n{{ 1 < 'a' }}"));
        Assert.Equal(3, error.Line);
        Assert.Contains("not supported", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_parsed_template_renders_concurrently()
    {
        var template = JinjaTemplate.Parse("{% for i in range(n) %}{{ i }}{% endfor %}");
        Parallel.For(0, 32, n =>
        {
            var expected = string.Concat(Enumerable.Range(0, n));
            Assert.Equal(expected, template.Render(new Dictionary<string, object?> { ["n"] = (long)n }));
        });
    }

    [Theory]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion")]
    [InlineData("{{ range(10000000000) | length }}", "range")]
    [InlineData("{{ 'ab' * 100000000000 }}", "too long")]
    [InlineData("{{ 'a b'.split(1) }}", "")]
    [InlineData("{{ 'a'.center() }}", "")]
    public void Runaway_or_mistyped_templates_fail_as_template_errors(string template, string reason)
    {
        var error = Assert.Throws<TemplateException>(() => Render(template));
        Assert.Contains(reason, error.Reason, StringComparison.Ordinal);
        Assert.Equal(1, error.Line);
    }
}

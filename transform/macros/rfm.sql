{#-
  RFM scores, RFM segments and lifecycle stages of buyers: the rules and their tunables, in one
  place so that int_customer__purchases and its unit tests agree. The models live in
  models/intermediate/customer/ (see _customer__purchases.yml).

  Only counted orders count: not test, not cancelled, not malformed (fct_orders keeps test and
  malformed orders out; cancelled ones are filtered by the models). Days are counted between
  shop-local calendar dates (var shop_timezone), like the sandbox's ground truth does.
-#}

{#- ---------------------------------------------------------------------------------------------
    Tunables. Defaults live here; override with --vars or in dbt_project.yml, e.g.
    `--vars '{rfm_monetary_amounts: [100, 200, 400, 800]}'`. Scores are fixed thresholds, not
    quintiles: a customer's score does not move because other customers bought more, and a
    score means the same thing in every nightly run.
--------------------------------------------------------------------------------------------- -#}

{#- Recency: the most days since the last counted order that still score 5, 4, 3 and 2 (more
    than the last one scores 1). A beauty shop's replenishment cycle is 4-8 weeks (a cream
    every ~6 weeks), so within a month is "current", within two is "due", and beyond 8 months
    a customer has skipped several cycles. -#}
{% macro rfm_recency_days() -%}
    {{- return(var('rfm_recency_days', [30, 60, 120, 240])) -}}
{%- endmacro %}

{#- Frequency: the fewest counted orders that score 2, 3, 4 and 5 (1 order scores 1):
    1 → 1, 2 → 2, 3 → 3, 4-5 → 4, 6 or more → 5. -#}
{% macro rfm_frequency_orders() -%}
    {{- return(var('rfm_frequency_orders', [2, 3, 4, 6])) -}}
{%- endmacro %}

{#- Monetary: the least net revenue (shop currency, refunds deducted) that scores 2, 3, 4 and 5.
    The sandbox shop's average order is ~48 EUR, so the steps are about 1, 2, 4 and 8 average
    orders: below 50 is a single small basket, 400 or more is a top customer. In a shop with
    another currency or price level, scale them (e.g. NOK × 10). -#}
{% macro rfm_monetary_amounts() -%}
    {{- return(var('rfm_monetary_amounts', [50, 100, 200, 400])) -}}
{%- endmacro %}

{#- Churn: a buyer has churned when the days since their last counted order exceed T, where
    T = churn_gap_multiple × the mean gap in days between their counted orders, clamped to
    [churn_min_days, churn_max_days], and T = churn_single_order_days for a single order. The
    defaults (3, 30, 180, 180) are the definition the sandbox's ground truth uses. -#}
{% macro churn_gap_multiple() -%}
    {{- return(var('churn_gap_multiple', 3)) -}}
{%- endmacro %}

{% macro churn_min_days() -%}
    {{- return(var('churn_min_days', 30)) -}}
{%- endmacro %}

{% macro churn_max_days() -%}
    {{- return(var('churn_max_days', 180)) -}}
{%- endmacro %}

{% macro churn_single_order_days() -%}
    {{- return(var('churn_single_order_days', 180)) -}}
{%- endmacro %}

{#- At risk: not churned, but the days since the last counted order exceed this share of T
    (half-way to churning: a regular buyer who has missed a cycle and a half). -#}
{% macro lifecycle_at_risk_share() -%}
    {{- return(var('lifecycle_at_risk_share', 0.5)) -}}
{%- endmacro %}

{#- New: the first counted order is at most this many days old. Reactivated: the latest return
    from churn is at most this many days old. -#}
{% macro lifecycle_new_days() -%}
    {{- return(var('lifecycle_new_days', 90)) -}}
{%- endmacro %}

{% macro lifecycle_reactivated_days() -%}
    {{- return(var('lifecycle_reactivated_days', 90)) -}}
{%- endmacro %}

{#- ---------------------------------------------------------------------------------------------
    Scores
--------------------------------------------------------------------------------------------- -#}

{%- macro _rfm_four_thresholds(name, values) -%}
    {%- if values | length != 4 -%}
        {{ exceptions.raise_compiler_error(name ~ " needs 4 thresholds (for scores 5..2 or 2..5), got " ~ values) }}
    {%- endif -%}
    {{- return(values) -}}
{%- endmacro -%}

{#- 5 when days_since_last_order <= the first threshold, …, 1 above the last; null when null. -#}
{% macro rfm_recency_score(days_since_last_order) -%}
    {%- set limits = _rfm_four_thresholds('rfm_recency_days', rfm_recency_days()) -%}
    case
        when {{ days_since_last_order }} is null then null
        {%- for limit in limits %}
        when {{ days_since_last_order }} <= {{ limit }} then {{ 5 - loop.index0 }}
        {%- endfor %}
        else 1
    end
{%- endmacro %}

{#- 5 when orders >= the last threshold, …, 1 below the first; null for no counted order. -#}
{% macro rfm_frequency_score(orders) -%}
    {%- set limits = _rfm_four_thresholds('rfm_frequency_orders', rfm_frequency_orders()) -%}
    case
        when {{ orders }} is null or {{ orders }} < 1 then null
        {%- for limit in limits | reverse %}
        when {{ orders }} >= {{ limit }} then {{ 5 - loop.index0 }}
        {%- endfor %}
        else 1
    end
{%- endmacro %}

{#- 5 when net revenue >= the last threshold, …, 1 below the first (also zero or negative). -#}
{% macro rfm_monetary_score(net_revenue) -%}
    {%- set limits = _rfm_four_thresholds('rfm_monetary_amounts', rfm_monetary_amounts()) -%}
    case
        when {{ net_revenue }} is null then null
        {%- for limit in limits | reverse %}
        when {{ net_revenue }} >= {{ limit }} then {{ 5 - loop.index0 }}
        {%- endfor %}
        else 1
    end
{%- endmacro %}

{#- The RFM segment of a recency, frequency and monetary score (each 1-5): the first rule that
    matches wins, so every one of the 125 combinations has exactly one segment (null scores give
    null). Each rule only sees what the rules above it left:

      1. Champions           r >= 4 and f >= 4 and m >= 4   recent, frequent, big spenders
      2. Loyal               r >= 3 and f >= 3              regulars who are still buying
      3. Potential loyalist  r >= 3 and f = 2               came back once, recently
      4. New                 r >= 4 and f = 1               one order, within two months
      5. Can't lose          f >= 4 or m >= 4               (r <= 2, or r = 3 with one order):
                                                            were frequent or big, gone quiet
      6. At risk             f >= 2                         (r <= 2): repeat buyers slipping away
      7. Hibernating         r >= 2                         (one small order 2-8 months ago)
      8. Lost                everything else                (one small order over 8 months ago)
-#}
{% macro rfm_segment(recency_score, frequency_score, monetary_score) -%}
    {%- set r, f, m = recency_score, frequency_score, monetary_score -%}
    case
        when {{ r }} is null or {{ f }} is null or {{ m }} is null then null
        when {{ r }} >= 4 and {{ f }} >= 4 and {{ m }} >= 4 then 'Champions'
        when {{ r }} >= 3 and {{ f }} >= 3 then 'Loyal'
        when {{ r }} >= 3 and {{ f }} = 2 then 'Potential loyalist'
        when {{ r }} >= 4 and {{ f }} = 1 then 'New'
        when {{ f }} >= 4 or {{ m }} >= 4 then 'Can''t lose'
        when {{ f }} >= 2 then 'At risk'
        when {{ r }} >= 2 then 'Hibernating'
        else 'Lost'
    end
{%- endmacro %}

{#- The segments, in rule order (for accepted_values tests and BI sort orders). -#}
{% macro rfm_segments() -%}
    {{- return(["Champions", "Loyal", "Potential loyalist", "New", "Can't lose", "At risk", "Hibernating", "Lost"]) -}}
{%- endmacro %}

{#- ---------------------------------------------------------------------------------------------
    Churn and lifecycle
--------------------------------------------------------------------------------------------- -#}

{#- T in days (double) for a buyer whose counted orders so far number `orders`, the first on
    shop-local date `first_date` and the latest on `last_date`: the gap multiple × the mean gap
    between consecutive orders ((last - first) / (orders - 1)), clamped to [min, max]; the
    single-order value for one order. Null without orders. -#}
{% macro churn_threshold_days(first_date, last_date, orders) -%}
    case
        when ({{ orders }}) is null or ({{ orders }}) < 1 then null
        when ({{ orders }}) = 1 then {{ churn_single_order_days() }}::double
        else least(
            {{ churn_max_days() }}::double,
            greatest(
                {{ churn_min_days() }}::double,
                {{ churn_gap_multiple() }} * (({{ last_date }}) - ({{ first_date }}))::double / (({{ orders }}) - 1)
            )
        )
    end
{%- endmacro %}

{#- The lifecycle stage of a buyer (null for no counted order). Days are between shop-local
    dates; days_since_last_reactivation is null when the buyer never came back from churn.
    First matching rule wins:

      1. churned      days since the last order > T
      2. at risk      days since the last order > T × lifecycle_at_risk_share (0.5)
      3. new          first order at most lifecycle_new_days (90) days ago
      4. reactivated  came back from churn (an order more than T-at-that-time days after the one
                      before it) at most lifecycle_reactivated_days (90) days ago
      5. active       everyone else: buying at their usual pace
-#}
{% macro lifecycle_stage(days_since_first_order, days_since_last_order, churn_threshold_days, days_since_last_reactivation) -%}
    case
        when {{ days_since_last_order }} is null or {{ churn_threshold_days }} is null then null
        when {{ days_since_last_order }} > {{ churn_threshold_days }} then 'churned'
        when {{ days_since_last_order }} > {{ churn_threshold_days }} * {{ lifecycle_at_risk_share() }} then 'at risk'
        when {{ days_since_first_order }} <= {{ lifecycle_new_days() }} then 'new'
        when {{ days_since_last_reactivation }} <= {{ lifecycle_reactivated_days() }} then 'reactivated'
        else 'active'
    end
{%- endmacro %}

{#- ---------------------------------------------------------------------------------------------
    Generic data tests
--------------------------------------------------------------------------------------------- -#}

{#- rfm_segment gives every one of the 125 score combinations exactly one known segment, and the
    score macros give 1-5 for every input (run on any model; `model` is only where it is attached).
    Fails with one row per combination or input that breaks the rule. -#}
{% test rfm_rules_cover_every_score(model) %}
    with

    scores as (
        select * from range(1, 6) as t(score)
    ),

    combinations as (
        select
            r.score as r,
            f.score as f,
            m.score as m,
            {{ rfm_segment('r.score', 'f.score', 'm.score') }} as segment
        from scores as r
        cross join scores as f
        cross join scores as m
    ),

    bad_segments as (
        select 'r=' || r || ' f=' || f || ' m=' || m || ' has segment ' || coalesce(segment, 'null') as problem
        from combinations
        where segment is null
            or segment not in ('{{ rfm_segments() | map("replace", "'", "''") | join("', '") }}')
    ),

    inputs as (
        select value from range(0, 1000) as t(value)
    ),

    bad_scores as (
        select 'input ' || value || ' scores outside 1-5' as problem
        from inputs
        where {{ rfm_recency_score('value') }} not between 1 and 5
            or (value >= 1 and {{ rfm_frequency_score('value') }} not between 1 and 5)
            or {{ rfm_monetary_score('value') }} not between 1 and 5
    )

    select * from bad_segments
    union all
    select * from bad_scores
{% endtest %}

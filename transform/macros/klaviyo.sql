{#-
  Klaviyo's metrics (event types) by what they say about a recipient, in one place so consent,
  engagement and the campaign report count the same events.
-#}

{#- A recipient left the list: the unsubscribe link, or a list-level unsubscribe. -#}
{% macro klaviyo_unsubscribe_metrics() -%}
    {{- return(["Unsubscribed", "Unsubscribed from Email Marketing"]) -}}
{%- endmacro %}

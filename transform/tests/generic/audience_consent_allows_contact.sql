{#- Nobody is in an audience whom the shop may not email now: every person of the model is in
    customers with may_email true and a lifecycle stage of the audience, and their consent (the
    consent model) is subscribed, unsuppressed and from the source the audience names. Fails with
    one row per person and the problem. -#}
{% test audience_consent_allows_contact(model, customers, consent, lifecycle_stages) %}
    with

    audience as (
        select customer_key, email_consent_source from {{ model }}
    ),

    checked as (
        select
            audience.customer_key,
            case
                when customers.customer_key is null then 'not in customer_360'
                when not customers.may_email then 'customer_360.may_email is false'
                when customers.lifecycle_stage not in ('{{ lifecycle_stages | join("', '") }}')
                    then 'lifecycle stage ' || customers.lifecycle_stage || ' is not in the audience'
                when consent.customer_key is null then 'no consent statement'
                when consent.email_marketing_consent <> 'subscribed'
                    then 'latest consent statement is ' || consent.email_marketing_consent
                when consent.is_email_suppressed then 'email is suppressed'
                when consent.email_consent_source <> audience.email_consent_source
                    then 'consent source differs from the consent model'
            end as problem
        from audience
        left join {{ customers }} as customers on audience.customer_key = customers.customer_key
        left join {{ consent }} as consent on audience.customer_key = consent.customer_key
    )

    select * from checked
    where problem is not null
{% endtest %}

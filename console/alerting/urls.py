from django.urls import path

from console.alerting import views

urlpatterns = [
    path("", views.alert_list, name="alerting-alerts"),
    path("<int:pk>/", views.alert_detail, name="alerting-alert"),
    path("<int:pk>/ack/", views.alert_ack, name="alerting-alert-ack"),
    path("<int:pk>/unack/", views.alert_unack, name="alerting-alert-unack"),
    path("rules/", views.rule_list, name="alerting-rules"),
    path("rules/add/", views.rule_edit, name="alerting-rule-add"),
    path("rules/<int:pk>/edit/", views.rule_edit, name="alerting-rule-edit"),
    path("rules/<int:pk>/toggle/", views.rule_toggle, name="alerting-rule-toggle"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="alerting-rule-delete"),
    path("silences/", views.silence_list, name="alerting-silences"),
    path("silences/<int:pk>/expire/", views.silence_expire, name="alerting-silence-expire"),
    path("channels/", views.channel_list, name="alerting-channels"),
    path("channels/add/", views.channel_edit, name="alerting-channel-add"),
    path("channels/<int:pk>/", views.channel_detail, name="alerting-channel"),
    path("channels/<int:pk>/edit/", views.channel_edit, name="alerting-channel-edit"),
    path("channels/<int:pk>/test/", views.channel_test, name="alerting-channel-test"),
    path("channels/<int:pk>/toggle/", views.channel_toggle, name="alerting-channel-toggle"),
]

/* imperium-send's adapters: requests built for each provider, message ids read back, the
 * generic signature, outcome-independent helpers. */
#include "../../../workers/send/provider.c"
#include "../../../workers/send/provider_chatflow.c"
#include "../../../workers/send/provider_generic.c"
#include "../../../workers/send/provider_telegram.c"
#include "../../../workers/send/provider_whatsapp.c"

#include <check.h>

static send_msg_t msg = {
    .channel = "telegram", .recipient = "777", .text = "hi", .purpose = "answer", .reply_to = "42"};

static send_channel_t channel(const char *settings, const char *secrets)
{
    send_channel_t ch = {json_loads(settings, 0, NULL), json_loads(secrets, 0, NULL)};
    return ch;
}

START_TEST(url_join)
{
    char *u = send_url_join("http://x/v1/", "/a/b");
    ck_assert_str_eq(u, "http://x/v1/a/b");
    free(u);
}
END_TEST

START_TEST(telegram_request)
{
    send_channel_t ch = channel("{}", "{\"bot_token\":\"1:A\"}");
    send_req_t req = {0};
    ck_assert_ptr_null(send_provider_telegram.build(&msg, &ch, "http://t", "id", &req));
    ck_assert_str_eq(req.url, "http://t/bot1:A/sendMessage");
    ck_assert_str_eq(req.body, "{\"chat_id\":\"777\",\"text\":\"hi\",\"reply_to_message_id\":42}");
    send_req_dispose(&req);
    const char *ok = "{\"ok\":true,\"result\":{\"message_id\":9}}";
    char *id = send_provider_telegram.message_id(ok, strlen(ok));
    ck_assert_str_eq(id, "9");
    free(id);
    ck_assert(!send_provider_telegram.idempotent);
    json_decref(ch.settings);
    json_decref(ch.secrets);
}
END_TEST

START_TEST(telegram_missing_token)
{
    send_channel_t ch = channel("{}", "{}");
    send_req_t req = {0};
    imp_error_t *err = send_provider_telegram.build(&msg, &ch, "http://t", "id", &req);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), "secret_missing");
    imp_error_free(err);
    send_req_dispose(&req);
    json_decref(ch.settings);
    json_decref(ch.secrets);
}
END_TEST

START_TEST(chatflow_request)
{
    send_channel_t ch = channel("{}", "{\"api_token\":\"tok\"}");
    send_req_t req = {0};
    ck_assert_ptr_null(send_provider_chatflow.build(&msg, &ch, "http://c/", "op-1", &req));
    ck_assert_str_eq(req.url, "http://c/v1/messages/send-text");
    ck_assert_str_eq(req.headers[0], "Authorization: Bearer tok");
    ck_assert_str_eq(req.headers[1], "Idempotency-Key: op-1");
    ck_assert(send_provider_chatflow.idempotent);
    send_req_dispose(&req);
    json_decref(ch.settings);
    json_decref(ch.secrets);
}
END_TEST

START_TEST(whatsapp_request)
{
    send_channel_t ch = channel("{\"phone_number_id\":\"15\"}", "{\"access_token\":\"w\"}");
    send_req_t req = {0};
    ck_assert_ptr_null(send_provider_whatsapp.build(&msg, &ch, "http://g/v21.0", "id", &req));
    ck_assert_str_eq(req.url, "http://g/v21.0/15/messages");
    send_req_dispose(&req);
    const char *ok = "{\"messages\":[{\"id\":\"wamid.X\"}]}";
    char *id = send_provider_whatsapp.message_id(ok, strlen(ok));
    ck_assert_str_eq(id, "wamid.X");
    free(id);
    json_decref(ch.settings);
    json_decref(ch.secrets);
}
END_TEST

START_TEST(generic_signature)
{
    /* The Standard Webhooks reference vector: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,
     * id msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330, body {"test": 2432232314}. */
    char sig[64];
    ck_assert_ptr_null(sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                            "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "{\"test\": 2432232314}",
                            sig, sizeof(sig)));
    ck_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    imp_error_t *err = sign("nope", "a", "1", "b", sig, sizeof(sig));
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    imp_error_free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("send_providers");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, url_join);
    tcase_add_test(tc, telegram_request);
    tcase_add_test(tc, telegram_missing_token);
    tcase_add_test(tc, chatflow_request);
    tcase_add_test(tc, whatsapp_request);
    tcase_add_test(tc, generic_signature);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

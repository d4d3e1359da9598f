"""``mip6-auc``: an authentication centre for EAP-SIM/AKA/AKA' servers (hostapd's hlr_auc_gw
protocol), with Milenage subscribers and fixed GSM triplets."""
